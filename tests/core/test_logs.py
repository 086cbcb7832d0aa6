"""The pure log-cursor logic: paging, ties, incremental reads, what decides a wait."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_posthog_bx.core.logs import (
    LogCursor,
    LogQuery,
    LogScan,
    LogWatch,
    entry_key,
    parse_level,
    process,
)
from airflow_provider_posthog_bx.core.time import format_instant, parse_instant
from airflow_provider_posthog_bx.exceptions import PostHogInputError

UTC = timezone.utc
T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
NOTHING = LogWatch(search="no entry says this")


class FakeLogs:
    """PostHog's logs endpoint semantics: exclusive after/before, newest first, limit."""

    def __init__(self) -> None:
        self.rows: list[tuple[datetime, int, dict[str, str]]] = []
        self.queries: list[LogQuery] = []
        self._seq = itertools.count()

    def add(self, when: datetime, message: str, level: str = "INFO") -> dict[str, str]:
        entry = {
            "log_source_id": "export",
            "instance_id": "run-1",
            "timestamp": format_instant(when),
            "level": level,
            "message": message,
        }
        self.rows.append((when, next(self._seq), entry))
        return entry

    def get(self, query: LogQuery) -> list[dict[str, str]]:
        self.queries.append(query)
        after = datetime.fromisoformat(query.after.replace("Z", "+00:00"))
        before = (
            datetime.fromisoformat(query.before.replace("Z", "+00:00")) if query.before else None
        )
        rows = [row for row in self.rows if row[0] > after and (before is None or row[0] < before)]
        rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
        return [dict(row[2]) for row in rows[: query.limit]]


def read(logs: FakeLogs, cursor: LogCursor, watch: LogWatch = NOTHING, **scan_args: int):
    scan = LogScan(cursor, **scan_args)
    while (query := scan.next_query()) is not None:
        scan.feed(logs.get(query))
    return process(cursor, scan.entries(), watch), scan


def messages(entries) -> list[str]:
    return [entry["message"] for entry in entries]


# ------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        ("", None),
        ("info", "INFO"),
        (" Warn ", "WARNING"),
        ("warning", "WARNING"),
        ("ERROR", "ERROR"),
    ],
)
def test_parse_level_accepts_level_names_case_insensitively(given, expected):
    assert parse_level(given) == expected


@pytest.mark.parametrize("bad", ["verbose", "warnings", 3])
def test_parse_level_names_parameter_value_and_accepted_levels(bad):
    with pytest.raises(PostHogInputError) as raised:
        parse_level(bad)
    text = str(raised.value)
    assert text.startswith("level ") and repr(bad) in text
    assert "DEBUG, LOG, INFO, WARNING, ERROR, CRITICAL or WARN" in text


def test_parse_instant_accepts_aware_values_only():
    assert parse_instant("after", "2026-11-29T10:00:00Z") == T0
    assert parse_instant("after", "2026-11-29T11:00:00+01:00") == T0
    assert parse_instant("after", T0.astimezone(timezone(timedelta(hours=-5)))) == T0
    with pytest.raises(
        PostHogInputError, match=r"after must be timezone-aware \(got '2026-11-29T10:00:00'\)"
    ):
        parse_instant("after", "2026-11-29T10:00:00")
    with pytest.raises(PostHogInputError, match="must be timezone-aware"):
        parse_instant("after", datetime(2026, 11, 29, 10))
    with pytest.raises(PostHogInputError, match="is not a valid ISO datetime"):
        parse_instant("after", "yesterday")


# ------------------------------------------------------------------------------ cursor


def test_cursor_round_trips_through_plain_json():
    cursor = LogCursor.starting_at(T0).advance(
        [
            {"timestamp": "2026-11-29T10:00:01Z", "instance_id": "i", "level": "INFO", "message": m}
            for m in ("a", "b")
        ]
    )
    data = json.loads(json.dumps(cursor.to_json()))
    assert LogCursor.from_json(data) == cursor
    # The exclusive bound to ask with is just before the newest timestamp processed, and the
    # two entries at that timestamp are remembered (they come back and are dropped).
    assert cursor.after == "2026-11-29T10:00:00.999999Z" and len(cursor.seen) == 2
    # 0.1.0 stored the first instant that counts; a deferred task may still carry that form.
    legacy = {"timestamp": "2026-11-29T10:00:01.000000Z", "seen": list(cursor.seen)}
    assert LogCursor.from_json(legacy) == cursor
    for bad in (
        None,
        {},
        {"timestamp": 5},
        {"timestamp": "2026-11-29T10:00:00"},
        {"timestamp": "2026-11-29T10:00:00Z", "seen": "abc"},
    ):
        with pytest.raises(ValueError):
            LogCursor.from_json(bad)


def test_newer_than_excludes_the_instant_and_starting_at_includes_it():
    logs = FakeLogs()
    logs.add(T0 - timedelta(microseconds=1), "before")
    logs.add(T0, "at")
    logs.add(T0 + timedelta(microseconds=1), "after")
    assert messages(read(logs, LogCursor.newer_than(T0))[0].processed) == ["after"]
    assert messages(read(logs, LogCursor.starting_at(T0))[0].processed) == ["at", "after"]


def test_one_scan_pages_backwards_and_reads_every_entry_once_despite_ties_at_page_edges():
    logs = FakeLogs()
    # 1,234 entries, three per timestamp, so page boundaries cut through shared timestamps.
    for i in range(1234):
        logs.add(T0 + timedelta(milliseconds=i // 3), f"entry {i}")
    step, scan = read(logs, LogCursor.newer_than(T0 - timedelta(seconds=1)))
    assert messages(step.processed) == [f"entry {i}" for i in range(1234)]
    assert not scan.truncated and not scan.warnings
    assert [q.before is None for q in logs.queries] == [True, False, False]
    assert all(q.limit == 500 for q in logs.queries)
    newest = T0 + timedelta(milliseconds=1233 // 3)
    assert step.cursor.after_instant == newest - timedelta(microseconds=1)
    assert len(step.cursor.seen) == 1234 - (1233 // 3) * 3


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 500])
def test_incremental_reads_never_miss_or_repeat(page_size):
    """Entries arrive between reads, some at the very timestamp the last read stopped at.

    No instant holds more entries than one page (the documented limit of the API).
    """
    logs = FakeLogs()
    cursor = LogCursor.newer_than(T0 - timedelta(seconds=1))
    newest = T0
    per_instant = 1 if page_size < 3 else 2
    for round_ in range(6):
        late = min(round_, page_size - per_instant)
        batch = [logs.add(newest, f"r{round_} late at the cursor {k}") for k in range(late)]
        for k in range(round_ + 2):
            when = newest + timedelta(milliseconds=k + 1)
            batch += [logs.add(when, f"r{round_} new {k}{c}") for c in "ab"[:per_instant]]
        newest += timedelta(milliseconds=round_ + 2)
        step, _ = read(logs, cursor, page_size=page_size)
        assert messages(step.processed) == sorted(
            messages(step.processed),
            key=lambda m: next(row[0] for row in logs.rows if row[2]["message"] == m),
        )
        assert sorted(messages(step.processed)) == sorted(messages(batch))
        cursor = LogCursor.from_json(json.loads(json.dumps(step.cursor.to_json())))


def test_entry_sharing_the_cursor_timestamp_that_arrives_later_is_read_once():
    logs = FakeLogs()
    cursor = LogCursor.newer_than(T0 - timedelta(seconds=1))
    logs.add(T0, "first at T")
    step, _ = read(logs, cursor)
    assert messages(step.processed) == ["first at T"]
    logs.add(T0, "second at T")
    again, _ = read(logs, step.cursor)
    assert messages(again.processed) == ["second at T"]
    assert logs.queries[-1].after < format_instant(T0)  # asked from just before T
    assert messages(read(logs, again.cursor)[0].processed) == []


def test_a_scan_keeps_the_oldest_entries_when_too_many_arrived_and_the_rest_follow():
    logs = FakeLogs()
    for i in range(37):
        logs.add(T0 + timedelta(milliseconds=i // 2), f"e{i}")
    cursor = LogCursor.newer_than(T0 - timedelta(seconds=1))
    seen: list[str] = []
    scans = 0
    while True:
        step, scan = read(logs, cursor, page_size=4, max_entries=8)
        scans += 1
        seen += messages(step.processed)
        cursor = step.cursor
        if not scan.truncated:
            break
    assert seen == [f"e{i}" for i in range(37)]
    assert scans == 5


def test_more_entries_at_one_instant_than_a_page_holds_ends_with_a_warning():
    logs = FakeLogs()
    for i in range(12):
        logs.add(T0, f"same {i}")
    logs.add(T0 - timedelta(milliseconds=1), "older")
    step, scan = read(logs, LogCursor.newer_than(T0 - timedelta(seconds=1)), page_size=5)
    assert scan.warnings and "share the timestamp" in scan.warnings[0]
    assert "older" in messages(step.processed)
    assert len(logs.queries) < 10


def test_entry_key_ignores_timestamp_spelling():
    a = {"timestamp": "2026-11-29T10:00:00Z", "instance_id": "i", "level": "info", "message": "m"}
    b = dict(a, timestamp="2026-11-29T10:00:00.000000+00:00", level="INFO")
    assert entry_key(a) == entry_key(b)
    assert entry_key(a) != entry_key(dict(a, message="n"))


# ------------------------------------------------------------------------------ decisions


def entry(message: str, level: str = "INFO") -> dict[str, str]:
    return {
        "timestamp": "2026-11-29T10:00:00Z",
        "instance_id": "i",
        "level": level,
        "message": message,
    }


def test_search_is_a_case_insensitive_substring_and_level_an_exact_level():
    watch = LogWatch(search="FINISHED successfully")
    assert watch.classify(entry("Batch export for range x finished Successfully: 3")) == "match"
    assert watch.classify(entry("Batch export starting")) is None
    assert LogWatch(level="WARNING").classify(entry("disk", "WARN")) == "match"
    assert LogWatch(level="WARN").classify(entry("disk", "WARNING")) == "match"
    assert LogWatch(level="INFO").classify(entry("x", "DEBUG")) is None
    assert LogWatch().classify(entry("anything")) == "match"


def test_error_entries_fail_unless_they_are_what_is_waited_for():
    boom = entry("Batch export failed: bucket gone", "ERROR")
    assert LogWatch(search="finished").classify(boom) == "error"
    assert LogWatch(search="bucket").classify(boom) == "error"  # no error level asked for
    assert LogWatch(search="bucket", level="error").classify(boom) == "match"
    assert LogWatch(level="ERROR").classify(entry("x", "CRITICAL")) == "error"
    assert LogWatch(search="other", level="ERROR").classify(boom) == "error"
    assert LogWatch(search="finished", fail_on_error=False).classify(boom) is None
    assert LogWatch(search="bucket", fail_on_error=False).classify(boom) == "match"


def test_process_walks_oldest_first_and_stops_at_the_deciding_entry():
    cursor = LogCursor.newer_than(T0 - timedelta(seconds=1))
    entries = [
        dict(entry("one"), timestamp="2026-11-29T10:00:01Z"),
        dict(entry("boom", "ERROR"), timestamp="2026-11-29T10:00:02Z"),
        dict(entry("target"), timestamp="2026-11-29T10:00:03Z"),
    ]
    step = process(cursor, entries, LogWatch(search="target"))
    assert step.outcome == "error" and step.entry == entries[1]
    assert messages(step.processed) == ["one", "boom"]
    assert step.cursor.after == "2026-11-29T10:00:01.999999Z"
    calm = process(cursor, entries, LogWatch(search="target", fail_on_error=False))
    assert calm.outcome == "match" and calm.entry == entries[2]
