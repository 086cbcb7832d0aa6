"""Reading a batch export's PostHog logs so that every new entry is processed exactly once.

PostHog returns log entries newest first, at most :data:`PAGE_SIZE` a request, with exclusive
``after`` and ``before`` bounds on ``timestamp`` and no entry id. A :class:`LogCursor` is the
``after`` to ask with plus the keys of the entries already processed after it (those sharing
the newest timestamp processed); a :class:`LogScan` asks for everything after the cursor,
pages backwards with ``before`` when more arrived than one page holds, and drops what was
already processed. :func:`process` then walks the new entries oldest first and stops at the
first one that decides the wait.

The cursor is plain JSON, so it can live in trigger kwargs or a task's durable state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_posthog_bx.core.time import UTC, format_instant, from_posthog, parse_iso
from airflow_provider_posthog_bx.exceptions import PostHogInputError

ONE_MICROSECOND = timedelta(microseconds=1)
PAGE_SIZE = 500  # PostHog's largest ``limit`` for logs
MAX_ENTRIES_PER_SCAN = 10_000

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
# Cursor


@dataclass(frozen=True)
class LogCursor:
    """Where reading has got to.

    :param after: the exclusive ``after`` bound to ask PostHog with (ISO, UTC).
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

    def is_new(self, entry: Mapping[str, Any]) -> bool:
        return entry_time(entry) > self.after_instant and entry_key(entry) not in self.seen

    def advance(self, processed: Iterable[Mapping[str, Any]]) -> LogCursor:
        """The cursor after also processing ``processed`` (new entries, any order)."""
        newest = self.after_instant + ONE_MICROSECOND
        seen = set(self.seen)
        for entry in processed:
            when = entry_time(entry)
            if when > newest:
                newest, seen = when, set()
            if when == newest:
                seen.add(entry_key(entry))
        if not seen:
            return self
        # Ask from just before the newest timestamp: entries sharing it may still arrive.
        return LogCursor(format_instant(newest - ONE_MICROSECOND), tuple(sorted(seen)))

    def to_json(self) -> dict[str, Any]:
        return {"after": self.after, "seen": list(self.seen)}

    @classmethod
    def from_json(cls, data: Any) -> LogCursor:
        """Rebuild from :meth:`to_json`; a ValueError says what is wrong.

        Also reads the 0.1.0 form ``{"timestamp", "seen"}`` (the first instant that counts),
        which deferred tasks may still carry after an upgrade.
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
        return cls(format_instant(stamp), tuple(sorted(seen)))


# --------------------------------------------------------------------------------------------
# Scan: which requests to send, and what is new in their answers


@dataclass(frozen=True)
class LogQuery:
    """One logs request: exclusive ISO bounds and a page size."""

    after: str
    before: str | None
    limit: int


@dataclass
class LogScan:
    """Collects the entries newer than ``cursor``, one newest-first page at a time.

    Drive it with ``while (query := scan.next_query()): scan.feed(get_logs(query))`` and read
    :meth:`entries`. When more than ``max_entries`` are new, only the oldest ``max_entries``
    are kept and ``truncated`` is set: process them, advance the cursor, and scan again.

    :param cursor: what was already processed.
    :param page_size: entries per request (PostHog allows 1..500).
    :param max_entries: most entries kept in memory by one scan.
    """

    cursor: LogCursor
    page_size: int = PAGE_SIZE
    max_entries: int = MAX_ENTRIES_PER_SCAN
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)
    requests: int = 0
    _before: datetime | None = None
    _before_inclusive: bool = False
    _done: bool = False
    _found: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {PAGE_SIZE} (got {self.page_size})")
        self.max_entries = max(self.max_entries, 2 * self.page_size)

    def next_query(self) -> LogQuery | None:
        """The next request to send, or None when every new entry has been fed."""
        if self._done:
            return None
        before = None
        if self._before is not None:
            edge = self._before + ONE_MICROSECOND if self._before_inclusive else self._before
            before = format_instant(edge)
        return LogQuery(self.cursor.after, before, self.page_size)

    def feed(self, page: Sequence[Mapping[str, Any]]) -> None:
        """Take the answer to the last :meth:`next_query` (PostHog's order: newest first)."""
        self.requests += 1
        added = 0
        for entry in page:
            if not self.cursor.is_new(entry):
                continue
            key = entry_key(entry)
            if key not in self._found:
                self._found[key] = dict(entry)
                added += 1
        if len(page) < self.page_size:
            self._done = True
        else:
            times = [entry_time(entry) for entry in page]
            oldest, newest = min(times), max(times)
            at_boundary = self._before == oldest and self._before_inclusive
            at_cursor = oldest <= self.cursor.after_instant + ONE_MICROSECOND and added == 0
            if oldest == newest and (at_boundary or at_cursor):
                # A whole page at one instant, already asked for: more entries share this
                # timestamp than one request returns. Step past it rather than loop.
                self.warnings.append(
                    f"{self.page_size} or more PostHog log entries share the timestamp "
                    f"{format_instant(oldest)}; any at that instant beyond the "
                    f"{self.page_size} returned are skipped"
                )
                if oldest <= self.cursor.after_instant + ONE_MICROSECOND:
                    self._done = True
                else:
                    self._before, self._before_inclusive = oldest, False
            else:
                # Ask again for everything up to and including the oldest timestamp seen:
                # entries sharing it may not all have fitted in this page.
                self._before, self._before_inclusive = oldest, True
        self._trim()

    def _trim(self) -> None:
        if len(self._found) <= self.max_entries:
            return
        ordered = sorted(self._found.items(), key=lambda item: entry_time(item[1]))
        self._found = dict(ordered[: self.max_entries])
        self.truncated = True

    def entries(self) -> list[dict[str, Any]]:
        """The new entries collected, oldest first (ties keep PostHog's order reversed)."""
        return sorted(reversed(list(self._found.values())), key=entry_time)

    def step(self, watch: LogWatch) -> Step:
        """Process what this scan collected (see :func:`process`)."""
        return process(self.cursor, self.entries(), watch)


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


@dataclass(frozen=True)
class Step:
    """The outcome of processing new entries.

    :param processed: the entries processed, oldest first, up to and including the deciding
        one; these are the ones to echo into the task log.
    :param cursor: the cursor after ``processed``.
    :param outcome: ``"match"``, ``"error"`` or None (keep waiting).
    :param entry: the deciding entry, when there is an outcome.
    """

    processed: list[dict[str, Any]]
    cursor: LogCursor
    outcome: str | None = None
    entry: dict[str, Any] | None = None


def process(cursor: LogCursor, entries: Sequence[dict[str, Any]], watch: LogWatch) -> Step:
    """Walk new ``entries`` (oldest first) until one decides the wait."""
    processed: list[dict[str, Any]] = []
    for entry in entries:
        processed.append(entry)
        outcome = watch.classify(entry)
        if outcome is not None:
            return Step(processed, cursor.advance(processed), outcome, entry)
    return Step(processed, cursor.advance(processed))
