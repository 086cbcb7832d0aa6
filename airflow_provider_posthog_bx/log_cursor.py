"""Where a wait on a batch export's PostHog logs has got to (pure logic, no I/O).

PostHog returns log entries newest first, at most 500 a request, with exclusive ``after`` and
``before`` bounds on ``timestamp`` and no entry id. To read every new entry exactly once, a
:class:`LogCursor` remembers the newest timestamp processed and the keys of the entries
processed at exactly that timestamp; a :class:`LogScan` asks for everything from that
timestamp on (``after`` one microsecond earlier), pages backwards with ``before`` when more
arrived than one page holds, and drops what was already processed. :func:`process` then walks
the new entries oldest first and stops at the first one that decides the wait.

The sync sensor and the async trigger both drive a scan with their own transport; the cursor
is plain JSON so it can live in trigger kwargs, task-instance state or an Airflow Variable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_posthog_bx.api import fromisoformat
from airflow_provider_posthog_bx.exceptions import PostHogInputError

UTC = timezone.utc
ONE_MICROSECOND = timedelta(microseconds=1)
PAGE_SIZE = 500  # PostHog's maximum ``limit`` for logs
MAX_ENTRIES_PER_SCAN = 10_000

LEVELS = ("DEBUG", "LOG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL")
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL"})
# Batch-export logs say WARNING, hog-function logs say WARN: a user asking for one means both.
_LEVEL_ALIASES = {"WARN": "WARNING"}

INSTANT_ACCEPTED = (
    "pass a timezone-aware datetime or an ISO string with an offset, such as "
    "'2026-01-01T00:00:00+00:00' or '2026-01-01T00:00:00Z'"
)


# --------------------------------------------------------------------------------------------
# Arguments


def parse_instant(param: str, value: Any) -> datetime:
    """An aware UTC datetime from an aware datetime or an ISO string with an offset.

    :raises PostHogInputError: naming ``param``, the value and what is accepted.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PostHogInputError(
                param, value.isoformat(), "must be timezone-aware", INSTANT_ACCEPTED
            )
        return value.astimezone(UTC)
    if not isinstance(value, str) or not value.strip():
        raise PostHogInputError(
            param, value, "must be a datetime or an ISO datetime string", INSTANT_ACCEPTED
        )
    try:
        parsed = parse_timestamp(value)
    except ValueError:
        raise PostHogInputError(
            param, value, "is not a valid ISO datetime", INSTANT_ACCEPTED
        ) from None
    if parsed.tzinfo is None:
        raise PostHogInputError(param, value, "must be timezone-aware", INSTANT_ACCEPTED)
    return parsed.astimezone(UTC)


def parse_level(value: Any) -> str | None:
    """The level name to wait for, upper-cased, or None for any level.

    :raises PostHogInputError: for anything but one of :data:`LEVELS` (case-insensitive).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = value.strip().upper() if isinstance(value, str) else None
    if text not in LEVELS:
        raise PostHogInputError(
            "level",
            value,
            "is not a PostHog log level",
            f"pass one of {', '.join(LEVELS)} (case-insensitive), or None for any level",
        )
    return text


def same_level(a: str, b: str) -> bool:
    """Whether two level names mean the same level (WARN and WARNING do)."""
    a, b = a.upper(), b.upper()
    return _LEVEL_ALIASES.get(a, a) == _LEVEL_ALIASES.get(b, b)


# --------------------------------------------------------------------------------------------
# Timestamps and entries


def parse_timestamp(text: str) -> datetime:
    """PostHog's ``2026-11-29T10:00:01.123456Z`` (or any ISO datetime) as a datetime.

    Naive values stay naive; PostHog's own timestamps always carry ``Z``.
    """
    return fromisoformat(text)


def format_timestamp(value: datetime) -> str:
    """UTC with all six fractional digits and ``Z``: ``2026-11-29T10:00:01.123000Z``."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def entry_time(entry: Mapping[str, Any]) -> datetime:
    """The entry's timestamp (UTC); a naive one is read as UTC."""
    parsed = parse_timestamp(str(entry.get("timestamp")))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def entry_key(entry: Mapping[str, Any]) -> str:
    """A short stable key of one entry: its timestamp, instance, level and message.

    PostHog entries have no id; two entries identical in all four fields are one entry here.
    """
    fields = [
        format_timestamp(entry_time(entry)),
        str(entry.get("instance_id") or ""),
        str(entry.get("level") or "").upper(),
        str(entry.get("message") or ""),
    ]
    raw = json.dumps(fields, ensure_ascii=False).encode()
    return hashlib.sha256(raw).hexdigest()[:20]


def echo_line(entry: Mapping[str, Any]) -> str:
    """How an entry reads in the Airflow task log: ``PostHog <timestamp> <LEVEL>: <message>``."""
    level = str(entry.get("level") or "").upper()
    return f"PostHog {entry.get('timestamp')} {level}: {entry.get('message')}"


# --------------------------------------------------------------------------------------------
# Cursor


@dataclass(frozen=True)
class LogCursor:
    """The newest timestamp processed, and the keys of the entries processed at exactly it.

    :param timestamp: ISO UTC instant (see :func:`format_timestamp`); entries after it are new.
    :param seen: :func:`entry_key` of every processed entry at exactly ``timestamp``.
    """

    timestamp: str
    seen: tuple[str, ...] = ()

    @classmethod
    def starting_at(cls, when: datetime) -> LogCursor:
        """A cursor for which every entry at or after ``when`` is new."""
        return cls(format_timestamp(when))

    @classmethod
    def newer_than(cls, when: datetime) -> LogCursor:
        """A cursor for which every entry strictly after ``when`` is new."""
        return cls(format_timestamp(when + ONE_MICROSECOND))

    @property
    def instant(self) -> datetime:
        return parse_timestamp(self.timestamp).astimezone(UTC)

    def query_after(self) -> str:
        """The ``after`` to ask PostHog with: just before the cursor, so entries sharing its
        timestamp come back (and the ones in ``seen`` are dropped)."""
        return format_timestamp(self.instant - ONE_MICROSECOND)

    def is_new(self, entry: Mapping[str, Any]) -> bool:
        when = entry_time(entry)
        instant = self.instant
        if when != instant:
            return when > instant
        return entry_key(entry) not in self.seen

    def advance(self, processed: Iterable[Mapping[str, Any]]) -> LogCursor:
        """The cursor after also processing ``processed`` (new entries, any order)."""
        newest = self.instant
        seen = set(self.seen)
        for entry in processed:
            when = entry_time(entry)
            if when > newest:
                newest, seen = when, set()
            if when == newest:
                seen.add(entry_key(entry))
        return LogCursor(format_timestamp(newest), tuple(sorted(seen)))

    def to_json(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp, "seen": list(self.seen)}

    @classmethod
    def from_json(cls, data: Any) -> LogCursor:
        """Rebuild from :meth:`to_json`; a ValueError says what is wrong."""
        if not isinstance(data, Mapping) or not isinstance(data.get("timestamp"), str):
            raise ValueError(f"not a log cursor: {data!r}")
        seen = data.get("seen") or []
        if not isinstance(seen, list) or not all(isinstance(key, str) for key in seen):
            raise ValueError(f"not a log cursor (seen must be a list of keys): {data!r}")
        stamp = parse_timestamp(data["timestamp"])
        if stamp.tzinfo is None:
            raise ValueError(f"not a log cursor (naive timestamp): {data!r}")
        return cls(format_timestamp(stamp), tuple(sorted(seen)))


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
            before = format_timestamp(edge)
        return LogQuery(self.cursor.query_after(), before, self.page_size)

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
            at_cursor = oldest == self.cursor.instant and added == 0
            if oldest == newest and (at_boundary or at_cursor):
                # A whole page at one instant, already asked for: more entries share this
                # timestamp than one request returns. Step past it rather than loop.
                self.warnings.append(
                    f"{self.page_size} or more PostHog log entries share the timestamp "
                    f"{format_timestamp(oldest)}; any at that instant beyond the "
                    f"{self.page_size} returned are skipped"
                )
                if oldest <= self.cursor.instant:
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


# --------------------------------------------------------------------------------------------
# What the new entries mean for the wait


@dataclass(frozen=True)
class LogWatch:
    """What the wait is for.

    :param search: case-insensitive substring of the message; None matches any message.
    :param level: one upper-cased level name (see :func:`parse_level`); None matches any.
    :param fail_on_error: an ERROR or CRITICAL entry fails the wait, unless it is the entry
        waited for (``level`` is ERROR or CRITICAL and it matches ``level`` and ``search``).
    """

    search: str | None = None
    level: str | None = None
    fail_on_error: bool = True

    def __post_init__(self) -> None:
        if self.level is not None:
            object.__setattr__(self, "level", self.level.upper())

    def matches(self, entry: Mapping[str, Any]) -> bool:
        if self.level is not None and not same_level(str(entry.get("level") or ""), self.level):
            return False
        if self.search:
            return self.search.lower() in str(entry.get("message") or "").lower()
        return True

    def classify(self, entry: Mapping[str, Any]) -> str | None:
        """``"match"``, ``"error"`` (an error entry that fails the wait) or None."""
        is_error = str(entry.get("level") or "").upper() in ERROR_LEVELS
        if is_error and self.fail_on_error:
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


def failure_message(entry: Mapping[str, Any], batch_export_id: str) -> str:
    """The error a failed wait raises: the entry's message, level and timestamp."""
    return (
        f"Batch export {batch_export_id} logged {str(entry.get('level')).upper()} at "
        f"{entry.get('timestamp')}: {entry.get('message')}"
    )
