"""Reading a batch export's PostHog logs so that every new entry is processed exactly once.

PostHog returns log entries newest first, at most :data:`PAGE_SIZE` a request, with exclusive
``after`` and ``before`` bounds on ``timestamp`` and no entry id; it ingests them
asynchronously, so an entry can become visible after newer ones were already read.

A :class:`LogCursor` is the ``after`` to ask with plus the keys (:func:`entry_key`) of the
entries already processed after it. ``after`` trails the newest processed timestamp by a
*look-back* window (:data:`DEFAULT_LOOK_BACK`), so every poll reads that window again and an
entry that shows up late inside it is still found, once; at most :data:`MAX_SEEN` keys are
kept (a busier window is narrowed to its newest :data:`MAX_SEEN` entries).

A :class:`LogScan` reads one poll. It pages back from the newest entry with ``before`` while
what it read fits in a third of ``max_entries``; a larger backlog keeps those newest entries
for last and walks forward from the oldest new entries in time slices of about
:data:`SLICE_PAGES` pages, sized from the density seen so far (paging back within a slice).
Each slice is processed oldest first once complete, so a backlog of ``n`` entries costs about
``n / PAGE_SIZE`` requests (not one re-read from the newest entry per slice) while at most
``max_entries`` are held. Processing stops at the first entry that decides the wait
(:class:`LogWatch`).

The cursor is plain JSON, so it can live in trigger kwargs or a task's durable state.

Many waits on one export can share one read a poll round: a :class:`LogWindowRead` reads every
entry newer than the earliest wait's ``after`` (paging back with ``before``, at most
:data:`SHARED_READ_PAGES` pages) into a :class:`LogWindow`, which answers each wait's own
:class:`LogQuery` exactly as PostHog would have, or says it cannot.
"""

from __future__ import annotations

import hashlib
import json
import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_posthog_bx.core.time import UTC, format_instant, from_posthog, parse_iso
from airflow_provider_posthog_bx.exceptions import PostHogInputError

ONE_MICROSECOND = timedelta(microseconds=1)
PAGE_SIZE = 500  # PostHog's largest ``limit`` for logs
MAX_ENTRIES_PER_SCAN = 15_000  # a third for the newest entries, the rest for a slice
DEFAULT_LOOK_BACK = timedelta(minutes=5)
MAX_SEEN = 1_000  # keys in a cursor: ~24 KB of JSON, at most ~2 pages re-read per poll
SLICE_PAGES = 10  # pages a catch-up slice aims at; one partial page per slice is the overhead
SHARED_READ_PAGES = MAX_ENTRIES_PER_SCAN // 3 // PAGE_SIZE  # a shared read: at most 5,000

# PostHog's level names. Batch-export logs say WARNING; hog-function logs (and many users) say
# WARN: asking for either means both, resolved here once.
LEVELS = ("DEBUG", "LOG", "INFO", "WARNING", "ERROR", "CRITICAL")
LEVEL_ALIASES = {"WARN": "WARNING"}
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_level(value: Any, param: str = "level") -> str | None:
    """The PostHog level name meant by ``value`` (case-insensitive, WARN = WARNING), or None
    for any level.

    :raises PostHogInputError: for anything else.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = value.strip().upper() if isinstance(value, str) else None
    text = LEVEL_ALIASES.get(text, text) if text is not None else None
    if text not in LEVELS:
        raise PostHogInputError(
            param,
            value,
            "is not a PostHog log level",
            f"pass one of {', '.join(LEVELS)} or WARN (case-insensitive), or None for any level",
        )
    return text


def entry_level(entry: Mapping[str, Any]) -> str:
    """The entry's level in PostHog's vocabulary (a WARN entry is WARNING)."""
    level = str(entry.get("level") or "").upper()
    return LEVEL_ALIASES.get(level, level)


def entry_time(entry: Mapping[str, Any]) -> datetime:
    """The entry's timestamp (UTC); an unreadable one sorts first."""
    return from_posthog(entry.get("timestamp")) or _EPOCH


def entry_key(entry: Mapping[str, Any]) -> str:
    """A short stable key of one entry: its timestamp, instance, level and message.

    PostHog entries have no id; two entries identical in all four fields are one entry here.
    """
    fields = [
        format_instant(entry_time(entry)),
        str(entry.get("instance_id") or ""),
        entry_level(entry),
        str(entry.get("message") or ""),
    ]
    raw = json.dumps(fields, ensure_ascii=False).encode()
    return hashlib.sha256(raw).hexdigest()[:20]


def echo_line(entry: Mapping[str, Any]) -> str:
    """How an entry reads in the Airflow task log: ``PostHog <timestamp> <LEVEL>: <message>``."""
    level = str(entry.get("level") or "").upper()
    return f"PostHog {entry.get('timestamp')} {level}: {entry.get('message')}"


def failure_message(entry: Mapping[str, Any], batch_export_id: str) -> str:
    """The error a failed wait raises: the entry's message, level and timestamp."""
    return (
        f"Batch export {batch_export_id} logged {str(entry.get('level')).upper()} at "
        f"{entry.get('timestamp')}: {entry.get('message')}"
    )


# --------------------------------------------------------------------------------------------
# What the new entries mean for the wait


@dataclass(frozen=True)
class LogWatch:
    """What the wait is for.

    :param search: case-insensitive substring of the message; None matches any message.
    :param level: a PostHog level name (see :func:`parse_level`); None matches any.
    :param fail_on_error: an ERROR or CRITICAL entry fails the wait, unless it is the entry
        waited for (``level`` is ERROR or CRITICAL and it matches ``level`` and ``search``).
    """

    search: str | None = None
    level: str | None = None
    fail_on_error: bool = True

    @classmethod
    def from_args(cls, search: Any, level: Any, fail_on_error: Any) -> LogWatch:
        """Validate a sensor's arguments.

        :raises PostHogInputError: for a non-string ``search`` or an unknown ``level``.
        """
        if search is not None and not isinstance(search, str):
            raise PostHogInputError(
                "search",
                search,
                "must be a string",
                "pass the text to look for, e.g. search='finished', or None for any message",
            )
        return cls(search or None, parse_level(level), bool(fail_on_error))

    def __post_init__(self) -> None:
        if self.level is not None:
            object.__setattr__(self, "level", parse_level(self.level))

    def matches(self, entry: Mapping[str, Any]) -> bool:
        if self.level is not None and entry_level(entry) != self.level:
            return False
        if self.search:
            return self.search.lower() in str(entry.get("message") or "").lower()
        return True

    def classify(self, entry: Mapping[str, Any]) -> str | None:
        """``"match"``, ``"error"`` (an error entry that fails the wait) or None."""
        if entry_level(entry) in ERROR_LEVELS and self.fail_on_error:
            # Waiting for an error entry (level ERROR/CRITICAL) makes a matching one the
            # success; any other error entry means the export failed.
            wanted = self.level in ERROR_LEVELS and self.matches(entry)
            return "match" if wanted else "error"
        return "match" if self.matches(entry) else None


def parse_look_back(value: Any, param: str = "look_back") -> timedelta:
    """The look-back window meant by ``value``: seconds (int or float) or a timedelta, >= 0.

    :raises PostHogInputError: for anything else.
    """
    if isinstance(value, timedelta):
        window = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        window = timedelta(seconds=value)
    else:
        window = None
    if window is None or window < timedelta(0) or window > timedelta(days=1):
        raise PostHogInputError(
            param,
            value,
            "is not a look-back window",
            "pass seconds (e.g. 300) or a timedelta between 0 and 1 day; 0 reads each entry "
            "only once it is newer than every entry read before",
        )
    return window


# --------------------------------------------------------------------------------------------
# Cursor


@dataclass(frozen=True)
class LogCursor:
    """Where reading has got to.

    :param after: the exclusive ``after`` bound to ask PostHog with (ISO, UTC): the newest
        timestamp processed minus the look-back window, never earlier than where reading
        started.
    :param seen: :func:`entry_key` of the processed entries newer than ``after``; they come
        back in the next answer and are dropped.
    """

    after: str
    seen: tuple[str, ...] = ()

    @classmethod
    def newer_than(cls, when: datetime) -> LogCursor:
        """A cursor for which every entry strictly after ``when`` is new."""
        return cls(format_instant(when))

    @classmethod
    def starting_at(cls, when: datetime) -> LogCursor:
        """A cursor for which every entry at or after ``when`` is new."""
        return cls.newer_than(when - ONE_MICROSECOND)

    @property
    def after_instant(self) -> datetime:
        return parse_iso(self.after).astimezone(UTC)

    def to_json(self) -> dict[str, Any]:
        return {"after": self.after, "seen": list(self.seen)}

    @classmethod
    def from_json(cls, data: Any) -> LogCursor:
        """Rebuild from :meth:`to_json`; a ValueError says what is wrong.

        Reads every form a deferred task or a stored record may carry after an upgrade: this
        one, 0.2's (the same keys, ``seen`` holding only the newest timestamp's entries) and
        0.1.0's ``{"timestamp", "seen"}`` (``timestamp`` being the first instant that counts).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"not a log cursor: {data!r}")
        after, legacy = data.get("after"), data.get("timestamp")
        text = after if isinstance(after, str) else legacy
        if not isinstance(text, str):
            raise ValueError(f"not a log cursor: {data!r}")
        seen = data.get("seen") or []
        if not isinstance(seen, list) or not all(isinstance(key, str) for key in seen):
            raise ValueError(f"not a log cursor (seen must be a list of keys): {data!r}")
        try:
            stamp = parse_iso(text)
        except ValueError:
            raise ValueError(f"not a log cursor (unreadable timestamp): {data!r}") from None
        if stamp.tzinfo is None:
            raise ValueError(f"not a log cursor (naive timestamp): {data!r}")
        if not isinstance(after, str):
            stamp -= ONE_MICROSECOND
        return cls(format_instant(stamp), tuple(sorted(set(seen))))


# --------------------------------------------------------------------------------------------
# Scan: which requests to send, and what is new in their answers


@dataclass(frozen=True)
class LogQuery:
    """One logs request: exclusive ISO bounds and a page size."""

    after: str
    before: str | None
    limit: int


@dataclass(frozen=True)
class Step:
    """What one answer brought.

    :param processed: the new entries processed, oldest first, up to and including the
        deciding one; these are the ones to echo into the task log.
    :param cursor: the cursor after everything processed so far in this scan.
    :param outcome: ``"match"``, ``"error"`` or None (keep waiting).
    :param entry: the deciding entry, when there is an outcome.
    """

    processed: list[dict[str, Any]]
    cursor: LogCursor
    outcome: str | None = None
    entry: dict[str, Any] | None = None


@dataclass
class LogScan:
    """One poll: reads every entry newer than ``cursor`` and processes the new ones, oldest
    first, until one decides the wait.

    Drive it with ``while (query := scan.next_query()): step = scan.feed(get_logs(query))``,
    echoing ``step.processed`` and stopping at ``step.outcome``; :attr:`cursor` is where the
    next poll starts (also ``step.cursor``).

    :param start: the cursor of what was already processed.
    :param watch: what decides the wait.
    :param look_back: how far behind the newest processed entry the next poll starts reading
        again, to catch entries PostHog makes visible late.
    :param page_size: entries per request (PostHog allows 1..500).
    :param max_entries: most entries held in memory at once (a third for the newest entries
        of a backlog, the rest for the slice being read).
    :param max_seen: most keys the cursor keeps (its window narrows beyond that).
    """

    start: LogCursor
    watch: LogWatch
    look_back: timedelta = DEFAULT_LOOK_BACK
    page_size: int = PAGE_SIZE
    max_entries: int = MAX_ENTRIES_PER_SCAN
    max_seen: int = MAX_SEEN
    warnings: list[str] = field(default_factory=list)
    requests: int = 0
    processed: int = 0
    cursor: LogCursor = field(init=False)
    _after: datetime = field(init=False)
    _pending: set[str] = field(init=False)  # keys of ``start`` not met again yet
    _known: dict[str, datetime] = field(default_factory=dict)  # processed, newer than cursor
    _phase: str = "back"  # back -> (slice ->) done
    _top: dict[str, dict[str, Any]] = field(default_factory=dict)  # the newest, kept for last
    _low: datetime = field(init=False)  # the unread region: (_low, _high]
    _high: datetime = field(init=False)
    _end: datetime = field(init=False)  # the current slice: (_low, _end]
    _before: datetime | None = None  # the next page: (_low, _before] (None: no bound)
    _inclusive: bool = True
    _span: timedelta | None = None
    _density: float | None = None  # entries per second seen in the last slice
    _hot: tuple[datetime, datetime, float] | None = None  # a stretch that overflowed a slice
    _slice: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {PAGE_SIZE} (got {self.page_size})")
        self.max_entries = max(self.max_entries, 6 * self.page_size)
        self.look_back = max(self.look_back, ONE_MICROSECOND)
        self.cursor = self.start
        self._after = self._low = self.start.after_instant
        self._pending = set(self.start.seen)

    @property
    def done(self) -> bool:
        return self._phase == "done"

    @property
    def _top_cap(self) -> int:
        """Newest entries read backwards before walking forward instead: a third."""
        return self.max_entries // 3

    @property
    def _slice_cap(self) -> int:
        return self.max_entries - self._top_cap

    @property
    def _slice_target(self) -> int:
        """Entries a slice aims at: SLICE_PAGES pages (less the tie each page repeats), at
        most half of what a slice may hold."""
        per_page = max(1, self.page_size - 1)
        return max(1, min(SLICE_PAGES * per_page, self._slice_cap // 2))

    def next_query(self) -> LogQuery | None:
        """The next request to send, or None when the poll is over."""
        if self._phase == "done":
            return None
        if self._before is None:
            return LogQuery(self.start.after, None, self.page_size)
        edge = self._before + ONE_MICROSECOND if self._inclusive else self._before
        return LogQuery(format_instant(self._low), format_instant(edge), self.page_size)

    def feed(self, page: Sequence[Mapping[str, Any]]) -> Step:
        """Take the answer to the last :meth:`next_query` (PostHog's order: newest first)."""
        self.requests += 1
        if self._phase == "back":
            return self._feed_back(page)
        return self._feed_slice(page)

    def _page_back(self, page: Sequence[Mapping[str, Any]]) -> bool:
        """Move ``_before`` past a newest-first page; whether nothing older is left to read."""
        if len(page) < self.page_size:
            return True
        times = [entry_time(entry) for entry in page]
        oldest, newest = min(times), max(times)
        if oldest == newest and oldest == self._before and self._inclusive:
            self._warn_tie(oldest)
            self._inclusive = False  # step past this instant rather than loop
        else:
            # Entries sharing the oldest timestamp may not all have fitted: ask again for it.
            self._before, self._inclusive = oldest, True
        assert self._before is not None
        last = self._before if self._inclusive else self._before - ONE_MICROSECOND
        return last <= self._low

    # -- newest first, as long as that fits in memory

    def _feed_back(self, page: Sequence[Mapping[str, Any]]) -> Step:
        for entry in page:
            self._top.setdefault(entry_key(entry), dict(entry))
        if self._page_back(page):
            return self._finish(self._process(_oldest_first(self._top.values())))
        if len(self._top) < self._top_cap:
            return Step([], self.cursor)
        # A backlog: keep these newest entries for last and walk forward from the oldest.
        assert self._before is not None
        newest = max(entry_time(entry) for entry in self._top.values())
        self._high = self._before if self._inclusive else self._before - ONE_MICROSECOND
        seconds = max((newest - self._high).total_seconds(), 1e-6)
        self._density = len(self._top) / seconds
        self._phase = "slice"
        self._plan()
        return Step([], self.cursor)

    # -- the backlog, walked forward one slice at a time

    def _plan(self) -> None:
        """Choose the next slice (_low, _end] of the unread region."""
        remaining = self._high - self._low
        target = self._slice_target
        span = remaining
        if self._density is not None:
            estimate = self._density * remaining.total_seconds()
            if estimate > target:
                slices = math.ceil(estimate / target)
                span = max(remaining / slices, ONE_MICROSECOND)
        if self._span is not None:
            span = min(span, 4 * self._span)  # grow at most 4x a slice: estimates can be off
        end = min(self._low + _whole_microseconds(span), self._high)
        if self._hot is not None:
            start, stop, density = self._hot
            if self._low >= stop:
                self._hot = None
            elif end > start:
                # A stretch known to be dense: enter it only as far as a slice holds.
                room = timedelta(seconds=target / 2 / density)
                end = min(end, max(start, self._low) + _whole_microseconds(room))
        self._end = end
        self._before, self._inclusive = self._end, True
        self._slice = {}

    def _feed_slice(self, page: Sequence[Mapping[str, Any]]) -> Step:
        for entry in page:
            self._slice.setdefault(entry_key(entry), dict(entry))
        if self._page_back(page):
            return self._close_slice()
        times = [entry_time(entry) for entry in page]
        self._check_slice(len(page) / max((max(times) - min(times)).total_seconds(), 1e-6))
        return Step([], self.cursor)

    def _check_slice(self, density: float) -> None:
        """Give up a slice that will not fit in ``max_entries`` at the density of its last
        page (the estimate was far off): drop what it holds, remember that stretch as dense,
        and plan again from its bottom (what was dropped is read again, in slices that fit)."""
        assert self._before is not None
        unread = (self._before - self._low).total_seconds()
        if len(self._slice) + density * unread <= self._slice_cap:
            return
        end, held = self._end, len(self._slice)
        hot = (self._before, end, held / max((end - self._before).total_seconds(), 1e-6))
        previous = (self._density, self._span, self._hot)
        self._density, self._span, self._hot = density, None, hot
        before, inclusive, kept = self._before, self._inclusive, self._slice
        self._plan()
        if self._end >= end:  # no smaller slice to be had: read this one through
            self._density, self._span, self._hot = previous
            self._end, self._before, self._inclusive, self._slice = end, before, inclusive, kept

    def _close_slice(self) -> Step:
        entries = _oldest_first(self._slice.values())
        seconds = max((self._end - self._low).total_seconds(), 1e-6)
        self._density = max(len(entries), 1) / seconds
        self._span = self._end - self._low
        self._low = self._end
        self._slice = {}
        step = self._process(entries)
        if step.outcome is not None:
            return self._finish(step)
        if self._low >= self._high:
            last = self._process(_oldest_first(self._top.values()))
            self._top = {}
            return self._finish(Step(step.processed + last.processed, *_rest(last)))
        self._plan()
        return step

    def _warn_tie(self, when: datetime) -> None:
        self.warnings.append(
            f"{self.page_size} or more PostHog log entries share the timestamp "
            f"{format_instant(when)}; any at that instant beyond the {self.page_size} returned "
            "are skipped"
        )

    # -- processing and the cursor

    def _process(self, entries: Sequence[Mapping[str, Any]]) -> Step:
        processed: list[dict[str, Any]] = []
        outcome: str | None = None
        deciding: dict[str, Any] | None = None
        for entry in entries:
            when = entry_time(entry)
            if when <= self._after:
                continue
            key = entry_key(entry)
            if key in self._pending:
                self._pending.discard(key)  # processed by an earlier poll
                self._known[key] = when
                continue
            if key in self._known:
                continue
            self._known[key] = when
            processed.append(dict(entry))
            outcome = self.watch.classify(entry)
            if outcome is not None:
                deciding = processed[-1]
                break
        self.processed += len(processed)
        self._advance()
        return Step(processed, self.cursor, outcome, deciding)

    def _finish(self, step: Step) -> Step:
        self._phase = "done"
        if step.outcome is None and self._pending:
            # Every entry after the cursor was read: a key not met again has no entry left.
            self._pending = set()
            self._advance()
            step = Step(step.processed, self.cursor)
        return step

    def _advance(self) -> None:
        """Move the cursor to the newest processed entry minus the look-back window."""
        if not self._known:
            self.cursor = LogCursor(format_instant(self._after), tuple(sorted(self._pending)))
            return
        newest = max(self._known.values())
        after = max(self._after, newest - self.look_back)
        kept = sorted(
            ((when, key) for key, when in self._known.items() if when > after), reverse=True
        )
        room = max(self.max_seen - len(self._pending), 0)
        if len(kept) > room and kept[room][0] < newest:
            after = kept[room][0]  # a busy window: keep its newest max_seen entries only
            kept = kept[:room]
            kept = [(when, key) for when, key in kept if when > after]
        self._after = after
        self._known = {key: when for when, key in kept}
        seen = sorted({*self._known, *self._pending})
        self.cursor = LogCursor(format_instant(after), tuple(seen))


# --------------------------------------------------------------------------------------------
# A shared read: one read of an export's newest entries answering many waits' queries


@dataclass
class LogWindowRead:
    """Reads every entry newer than ``after`` for a :class:`LogWindow`, at most ``max_pages``
    pages: drive it with ``while (query := read.next_query()): read.feed(get_logs(query))``,
    then take :meth:`window`.

    It pages back from the newest entry with ``before``. A full page may not hold every entry
    of its oldest instant, so the next page asks for that instant again and only the entries
    newer than it are kept from the page; a full page all at one instant (``page_size`` or
    more entries share it) ends the read there, as does ``max_pages``.
    """

    after: datetime
    max_pages: int = SHARED_READ_PAGES
    page_size: int = PAGE_SIZE
    pages: int = 0
    _entries: list[Mapping[str, Any]] = field(default_factory=list)
    _before: datetime | None = None  # the next page: entries at or before this instant
    _low: datetime | None = None  # set once done: every entry newer than it is held

    def next_query(self) -> LogQuery | None:
        if self._low is not None:
            return None
        before = None if self._before is None else format_instant(self._before + ONE_MICROSECOND)
        return LogQuery(format_instant(self.after), before, self.page_size)

    def feed(self, page: Sequence[Mapping[str, Any]]) -> None:
        """Take the answer to the last :meth:`next_query` (PostHog's order: newest first)."""
        self.pages += 1
        if len(page) < self.page_size:
            self._entries.extend(page)
            self._low = self.after
            return
        oldest = min(entry_time(entry) for entry in page)
        if oldest == self._before:  # the whole page at one instant: no exact way past it
            self._low = oldest
            return
        self._entries.extend(entry for entry in page if entry_time(entry) > oldest)
        self._before = oldest
        if self.pages >= self.max_pages:
            self._low = oldest

    def window(self) -> LogWindow:
        """What was read: complete above ``after``, or above where the read had to stop."""
        if self._low is None:
            raise ValueError("the read is not over: send next_query() first")
        return LogWindow(self._entries, self._low)


@dataclass(frozen=True)
class LogWindow:
    """Every log entry newer than ``low`` as one read showed them: answers a logs query it
    covers exactly as PostHog answered then (newest first, exclusive ``after`` and
    ``before``, the first ``limit``), for every wait on the export.

    :param entries: the entries, newest first (PostHog's order among equal timestamps).
    :param low: every entry with a timestamp after this is in ``entries``.
    """

    entries: Sequence[Mapping[str, Any]]
    low: datetime
    _keys: list[int] = field(init=False, repr=False)  # minus microseconds: ascending

    def __post_init__(self) -> None:
        keyed = sorted(((-_microseconds(entry_time(e)), e) for e in self.entries), key=_first)
        object.__setattr__(self, "entries", [entry for _, entry in keyed])
        object.__setattr__(self, "_keys", [key for key, _ in keyed])

    def answer(
        self, after: datetime, before: datetime | None, limit: int
    ) -> list[dict[str, Any]] | None:
        """PostHog's answer to ``after``/``before``/``limit``, or None if this window does not
        hold all of it: an answer reaching down to ``low`` or below is known only if
        ``after`` is not below ``low`` or ``limit`` entries come first."""
        top = 0 if before is None else bisect_right(self._keys, -_microseconds(before))
        bottom = max(top, bisect_left(self._keys, -_microseconds(after)))
        if after < self.low and bottom - top < limit:
            return None
        return [dict(entry) for entry in self.entries[top : min(bottom, top + limit)]]


def _microseconds(when: datetime) -> int:
    return (when - _EPOCH) // ONE_MICROSECOND


def _first(pair: tuple[int, Mapping[str, Any]]) -> int:
    return pair[0]


def _oldest_first(entries: Any) -> list[dict[str, Any]]:
    """Entries oldest first; entries sharing a timestamp keep PostHog's order reversed."""
    return sorted(reversed([dict(entry) for entry in entries]), key=entry_time)


def _whole_microseconds(span: timedelta) -> timedelta:
    return max(timedelta(microseconds=math.ceil(span / ONE_MICROSECOND)), ONE_MICROSECOND)


def _rest(step: Step) -> tuple[LogCursor, str | None, dict[str, Any] | None]:
    return step.cursor, step.outcome, step.entry
