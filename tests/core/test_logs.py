"""The pure log-cursor logic: paging, ties, incremental reads, late entries, catch-up cost,
what decides a wait."""

from __future__ import annotations

import itertools
import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_posthog_bx.core.logs import (
    MAX_SEEN,
    PAGE_SIZE,
    LogCursor,
    LogQuery,
    LogScan,
    LogWatch,
    LogWindow,
    LogWindowRead,
    Step,
    entry_key,
    parse_level,
    parse_look_back,
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


def read(logs: FakeLogs, cursor: LogCursor, watch: LogWatch = NOTHING, **scan_args):
    """One poll, as the sensor and the trigger drive it: the entries processed, the outcome."""
    scan = LogScan(cursor, watch, **scan_args)
    processed: list[dict] = []
    step = Step([], cursor)
    while (query := scan.next_query()) is not None:
        step = scan.feed(logs.get(query))
        processed += step.processed
        if step.outcome is not None:
            break
    return Step(processed, scan.cursor, step.outcome, step.entry), scan


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


def test_cursor_round_trips_through_plain_json_and_reads_its_earlier_forms():
    logs = FakeLogs()
    for m in ("a", "b"):
        logs.add(T0 + timedelta(seconds=1), m)
    step, _ = read(logs, LogCursor.starting_at(T0), look_back=timedelta(0))
    cursor = step.cursor
    data = json.loads(json.dumps(cursor.to_json()))
    assert LogCursor.from_json(data) == cursor
    # Without look-back the bound is just before the newest timestamp processed, and the two
    # entries at that timestamp are remembered (they come back and are dropped).
    assert cursor.after == "2026-11-29T10:00:00.999999Z" and len(cursor.seen) == 2
    # 0.1.0 stored the first instant that counts; a deferred task may still carry that form.
    legacy = {"timestamp": "2026-11-29T10:00:01.000000Z", "seen": list(cursor.seen)}
    assert LogCursor.from_json(legacy) == cursor
    logs.add(T0 + timedelta(seconds=2), "new")
    for form in (data, legacy):  # resuming from either repeats nothing, finds what is new
        again, _ = read(logs, LogCursor.from_json(form))
        assert messages(again.processed) == ["new"]
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
    start = LogCursor.newer_than(T0 - timedelta(seconds=1))
    step, scan = read(logs, start, look_back=timedelta(0))
    assert messages(step.processed) == [f"entry {i}" for i in range(1234)]
    assert not scan.warnings
    assert [q.before is None for q in logs.queries] == [True, False, False]
    assert all(q.limit == 500 for q in logs.queries)
    newest = T0 + timedelta(milliseconds=1233 // 3)
    assert step.cursor.after_instant == newest - timedelta(microseconds=1)
    assert len(step.cursor.seen) == 1234 - (1233 // 3) * 3
    # With the default 5-minute look-back the window reaches back to the start: all of its
    # entries are remembered, up to MAX_SEEN (the newest ones), and none is read twice.
    step, _ = read(logs, start)
    assert len(step.processed) == 1234 and len(step.cursor.seen) == MAX_SEEN
    assert messages(read(logs, step.cursor)[0].processed) == []


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


@pytest.mark.parametrize("burst_at", [30, 61])
def test_a_backlog_far_denser_than_estimated_is_read_once_within_the_memory_bound(burst_at):
    """The first page's density is a poor guess here (a burst of 300 entries within 300 us,
    among one entry a second): slices shrink or grow to fit, the scan holds at most
    max_entries, and every entry is processed once, in order."""
    logs = FakeLogs()
    sparse = [T0 + timedelta(seconds=i) for i in range(60)]
    dense = [T0 + timedelta(seconds=burst_at, microseconds=i + 1) for i in range(300)]
    times = sparse + dense
    for i, when in enumerate(sorted(times)):
        logs.add(when, f"e{i}")
    step, scan = read(
        logs, LogCursor.newer_than(T0 - timedelta(seconds=1)), page_size=4, max_entries=16
    )
    assert messages(step.processed) == [f"e{i}" for i in range(len(times))]
    # Pages of 4 bring 3 new entries (the oldest timestamp is asked for again): at least 120
    # requests; the misestimated slices cost less than as much again.
    assert scan.requests <= 2.1 * len(times) / 3


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


def test_a_poll_walks_oldest_first_and_stops_at_the_deciding_entry():
    logs = FakeLogs()
    cursor = LogCursor.newer_than(T0 - timedelta(seconds=1))
    one = logs.add(T0 + timedelta(seconds=1), "one")
    boom = logs.add(T0 + timedelta(seconds=2), "boom", "ERROR")
    target = logs.add(T0 + timedelta(seconds=3), "target")
    step, _ = read(logs, cursor, LogWatch(search="target"), look_back=timedelta(0))
    assert step.outcome == "error" and step.entry == boom
    assert messages(step.processed) == ["one", "boom"]
    assert step.cursor.after == "2026-11-29T10:00:01.999999Z"
    calm, _ = read(logs, cursor, LogWatch(search="target", fail_on_error=False))
    assert calm.outcome == "match" and calm.entry == target
    assert messages(calm.processed) == [one["message"], "boom", "target"]


# ------------------------------------------------------------------------------ late entries


def test_an_entry_visible_after_a_newer_one_is_found_once_within_the_look_back():
    logs = FakeLogs()
    cursor = LogCursor.newer_than(T0 - timedelta(seconds=1))
    logs.add(T0 + timedelta(minutes=1), "newer, read first")
    step, _ = read(logs, cursor)
    assert messages(step.processed) == ["newer, read first"]
    # PostHog ingests asynchronously: an older entry shows up after the newer one was read.
    logs.add(T0 + timedelta(seconds=10), "late")
    step, _ = read(logs, step.cursor, LogWatch(search="late"))
    assert step.outcome == "match" and messages(step.processed) == ["late"]
    assert messages(read(logs, step.cursor)[0].processed) == []
    # The window trails the newest entry: an entry later than the look-back is not found.
    logs.add(T0 + timedelta(minutes=20), "far newer")
    step, _ = read(logs, step.cursor, look_back=timedelta(minutes=5))
    assert messages(step.processed) == ["far newer"]
    assert step.cursor.after_instant == T0 + timedelta(minutes=15)
    logs.add(T0 + timedelta(minutes=14), "too late")
    logs.add(T0 + timedelta(minutes=16), "late enough")
    assert messages(read(logs, step.cursor)[0].processed) == ["late enough"]


def test_the_window_never_reaches_before_where_reading_started():
    logs = FakeLogs()
    logs.add(T0 - timedelta(seconds=30), "before the start")
    logs.add(T0 + timedelta(seconds=1), "after the start")
    step, _ = read(logs, LogCursor.starting_at(T0))
    assert messages(step.processed) == ["after the start"]
    assert step.cursor.after_instant == T0 - timedelta(microseconds=1)
    logs.add(T0 - timedelta(seconds=10), "late, but before the start")
    assert messages(read(logs, step.cursor)[0].processed) == []


def test_a_busy_window_keeps_at_most_max_seen_keys_and_repeats_nothing():
    logs = FakeLogs()
    cursor = LogCursor.newer_than(T0 - timedelta(seconds=1))
    seen: list[str] = []
    for round_ in range(4):
        for i in range(700):  # 2,800 entries within 3 seconds: far more than MAX_SEEN
            logs.add(T0 + timedelta(seconds=round_, microseconds=i), f"r{round_} {i}")
        step, _ = read(logs, cursor)
        seen += messages(step.processed)
        cursor = LogCursor.from_json(json.loads(json.dumps(step.cursor.to_json())))
        assert len(cursor.seen) <= MAX_SEEN
        assert len(json.dumps(cursor.to_json())) < 25_000
    assert seen == [f"r{r} {i}" for r in range(4) for i in range(700)]
    # The window shrank to the newest MAX_SEEN entries: a late one inside it is still found.
    logs.add(T0 + timedelta(seconds=3, microseconds=100), "late inside")
    assert messages(read(logs, cursor)[0].processed) == ["late inside"]


@pytest.mark.parametrize(
    ("given", "seconds"), [(300, 300.0), (0, 0.0), (2.5, 2.5), (timedelta(minutes=1), 60.0)]
)
def test_look_back_is_seconds_or_a_timedelta(given, seconds):
    assert parse_look_back(given) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", [-1, "300", True, None, timedelta(days=2), float("nan")])
def test_look_back_names_parameter_value_and_accepted_forms(bad):
    with pytest.raises(PostHogInputError) as raised:
        parse_look_back(bad)
    assert str(raised.value).startswith("look_back is not a look-back window (got ")
    assert "pass seconds (e.g. 300) or a timedelta between 0 and 1 day" in str(raised.value)


# ------------------------------------------------------------------------------ catch-up cost


@pytest.mark.parametrize("backlog", [1_234, 20_000])
def test_a_backlog_is_read_oldest_first_in_about_one_request_per_page(backlog):
    """Linear catch-up: at most 1.1 x ceil(n / 500) requests (0.2 re-read from the newest
    entry for every 1,000 entries it kept: 440 requests for 20,000)."""
    logs = FakeLogs()
    for i in range(backlog):
        logs.add(T0 + timedelta(milliseconds=i * 7 // 3), f"e{i}")
    cursor = LogCursor.newer_than(T0 - timedelta(seconds=1))
    step, scan = read(logs, cursor)
    assert messages(step.processed) == [f"e{i}" for i in range(backlog)]
    minimum = -(-backlog // PAGE_SIZE)
    assert scan.requests <= 1.1 * minimum, (scan.requests, minimum)
    # Oldest first: the match is the oldest matching entry, and the scan stops there.
    found, again = read(logs, cursor, LogWatch(search="e7"))
    assert found.entry["message"] == "e7"
    assert messages(found.processed) == [f"e{i}" for i in range(8)]
    assert again.requests <= scan.requests


# ------------------------------------------------------------------------------ shared reads


def shared_read(logs: FakeLogs, after: datetime, **read_args) -> tuple[LogWindow, int]:
    """One shared read of everything after ``after``, as the async hook drives it."""
    window = LogWindowRead(after, **read_args)
    while (query := window.next_query()) is not None:
        window.feed(logs.get(query))
    return window.window(), window.pages


def ties(logs: FakeLogs, count: int, seed: int) -> list[datetime]:
    """``count`` entries after T0, in runs of up to 4 at one instant (fewer than a page of
    5); their instants."""
    rng = random.Random(seed)
    when, made = T0, 0
    while made < count:
        when += timedelta(microseconds=rng.choice((1, 2, 500)))
        for _ in range(min(rng.choice((1, 1, 3, 4)), count - made)):
            logs.add(when, f"e{made}")
            made += 1
    return sorted({row[0] for row in logs.rows})


def queries(stamps: list[datetime], rng: random.Random, n: int) -> list[LogQuery]:
    edges = [T0 - timedelta(seconds=1), *stamps]
    out = []
    for _ in range(n):
        after = rng.choice(edges[:-1])
        before = rng.choice([None, *[s for s in edges if s > after][:30]])
        out.append(
            LogQuery(
                format_instant(after),
                None if before is None else format_instant(before),
                rng.choice((1, 4, 5, 13, 500)),
            )
        )
    return out


def answer(window: LogWindow, query: LogQuery):
    before = None if query.before is None else parse_instant("before", query.before)
    return window.answer(parse_instant("after", query.after), before, query.limit)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_shared_read_answers_every_query_it_covers_exactly_as_posthog(seed):
    logs = FakeLogs()
    stamps = ties(logs, 120, seed)
    rng = random.Random(seed)
    start = stamps[len(stamps) // 4]
    window, pages = shared_read(logs, start, page_size=5, max_pages=1_000)
    assert window.low == start
    assert pages <= 1.5 * 120 / 5
    answered = 0
    for query in queries(stamps, rng, 400):
        got = answer(window, query)
        if parse_instant("after", query.after) >= start:
            assert got is not None, query  # everything after the read's ``after`` is held
        if got is not None:
            answered += 1
            assert got == logs.get(query), query
    assert answered > 200


@pytest.mark.parametrize("seed", [4, 5])
def test_a_shared_read_cut_short_holds_only_what_it_read_completely(seed):
    logs = FakeLogs()
    stamps = ties(logs, 120, seed)
    rng = random.Random(seed)
    window, pages = shared_read(logs, T0, page_size=5, max_pages=4)
    assert pages == 4 and window.low > T0
    assert all(parse_instant("x", e["timestamp"]) > window.low for e in window.entries)
    newest = [e for e in logs.get(LogQuery(format_instant(T0), None, 500))]
    held = [e for e in newest if parse_instant("x", e["timestamp"]) > window.low]
    assert list(window.entries) == held and 10 < len(held) < 20
    for query in queries(stamps, rng, 400):
        got = answer(window, query)
        if got is not None:
            assert got == logs.get(query), query
    # Below its low: only a query whose ``limit`` newest entries it holds is answered.
    assert answer(window, LogQuery(format_instant(T0), None, 3)) == logs.get(
        LogQuery(format_instant(T0), None, 3)
    )
    assert answer(window, LogQuery(format_instant(T0), None, 100)) is None


def test_a_shared_read_stops_at_a_page_all_at_one_instant():
    logs = FakeLogs()
    logs.add(T0 + timedelta(seconds=1), "older")
    for i in range(7):
        logs.add(T0 + timedelta(seconds=2), f"tie {i}")
    logs.add(T0 + timedelta(seconds=3), "newest")
    window, pages = shared_read(logs, T0, page_size=5)
    # The first page ends inside the tie; asking for that instant again gives five of its
    # seven entries: no way past it exactly, so the read holds what is newer only.
    assert pages == 2 and window.low == T0 + timedelta(seconds=2)
    assert messages(window.entries) == ["newest"]
    assert answer(window, LogQuery(format_instant(T0), None, 5)) is None
    assert answer(window, LogQuery(format_instant(T0), None, 1)) == logs.get(
        LogQuery(format_instant(T0), None, 1)
    )


def test_a_shared_read_is_taken_only_once_over():
    with pytest.raises(ValueError, match="not over"):
        LogWindowRead(T0).window()
