"""Runs by data interval, and the failed runs of a backfill."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_provider_posthog_bx.core import runs
from airflow_provider_posthog_bx.core.time import format_instant

UTC = timezone.utc
START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC)


def run(run_id, start="2026-01-01T00:00:00Z", end="2026-01-01T01:00:00Z", **fields):
    return {"id": run_id, "data_interval_start": start, "data_interval_end": end, **fields}


def test_interval_filters_order_by_data_interval_so_old_intervals_are_found():
    assert runs.interval_filters(START, END) == {
        "ordering": "-data_interval_start",
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-01-01T01:00:00Z",
    }
    failed = runs.failed_run_filters(START, END)
    assert failed["ordering"] == "-data_interval_start"
    assert "Completed" not in failed["status"] and "Failed" in failed["status"]


def test_pick_run_takes_the_newest_run_of_exactly_the_interval():
    listed = [
        run("old", created_at="2026-01-01T01:05:00Z"),
        run("retry", created_at="2026-01-02T00:00:00Z"),
        run("other", start="2026-01-01T01:00:00Z", end="2026-01-01T02:00:00Z"),
        run("spelled", start="2026-01-01T01:00:00+01:00", created_at="2026-01-01T00:00:00Z"),
    ]
    assert runs.pick_run(listed, START, END)["id"] == "retry"
    assert runs.pick_run(listed[2:3], START, END) is None


def test_failed_runs_of_keeps_only_this_backfills_unsuccessful_runs():
    listed = [
        run("ok", backfill="bf", status="Completed"),
        run("bad", backfill="bf", status="Failed", latest_error="disk full"),
        run("running", backfill="bf", status="Running"),
        run("someone-else", backfill="other", status="Failed"),
    ]
    failed = runs.failed_runs_of(listed, "bf")
    assert [r["id"] for r in failed] == ["bad"]
    line = runs.describe_failed_runs(failed)
    assert line == "\n  2026-01-01T00:00:00Z - 2026-01-01T01:00:00Z: Failed: disk full"


def hours(*spans):
    return [
        (datetime(2026, 1, 1, h, tzinfo=UTC), datetime(2026, 1, 1, h + 1, tzinfo=UTC))
        for h in spans
    ]


def test_gaps_merge_the_intervals_without_a_completed_or_in_flight_run():
    grid = hours(0, 1, 2, 3, 4, 5)
    listed = [
        run("a", "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z", status="Completed"),
        run("b", "2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z", status="Failed"),
        run("c", "2026-01-01T04:00:00Z", "2026-01-01T05:00:00Z", status="Running"),
    ]
    h = hours(0, 2, 3, 5)
    assert runs.gaps(grid, listed) == [h[0], (h[1][0], h[2][1]), h[3]]
    # Ranges already being backfilled count as covered too.
    assert runs.gaps(grid, listed, covered=[(h[1][0], h[2][1])]) == [h[0], h[3]]
    assert runs.gaps(grid, []) == [(grid[0][0], grid[-1][1])]
    done = [run(f"r{s.hour}", s.isoformat(), e.isoformat(), status="Completed") for s, e in grid]
    assert runs.gaps(grid, done) == []


def hourly(hour: int, run_id: str, hours: int = 1) -> dict:
    start = datetime(2026, 1, 1, hour, tzinfo=UTC)
    end = datetime(2026, 1, 1, hour + hours, tzinfo=UTC)
    return run(run_id, format_instant(start), format_instant(end))


def at(hour: int) -> datetime:
    return datetime(2026, 1, 1, hour, tzinfo=UTC)


def test_an_interval_listing_answers_any_interval_inside_it_as_posthog_would():
    # PostHog's order: newest interval first (ties by id, descending).
    listed = [
        hourly(9, "j"),
        hourly(8, "i"),
        hourly(8, "h"),  # a retry of 08:00
        hourly(6, "g", hours=3),  # 06:00-09:00
        hourly(6, "f"),
        hourly(2, "b"),
        run("nostart", None, "2026-01-01T05:00:00Z"),
    ]
    listing = runs.IntervalListing(at(0), at(10), listed)
    assert [r["id"] for r in listing.within(at(6), at(9))] == ["i", "h", "g", "f"]
    assert [r["id"] for r in listing.within(at(7), at(9))] == ["i", "h"]
    assert [r["id"] for r in listing.within(at(6), at(8))] == ["f"]
    assert listing.within(at(3), at(6)) == []
    assert listing.within(at(0), at(10)) == [dict(r) for r in listed[:-1]]
    # Outside what was listed: not known.
    assert listing.within(at(9), at(11)) is None
    assert runs.IntervalListing(at(3), at(10), listed).within(at(2), at(3)) is None


def test_an_interval_listing_cut_short_covers_only_intervals_after_its_last_start():
    listed = [hourly(9, "j"), hourly(8, "i"), hourly(8, "h")]  # more pages follow
    listing = runs.IntervalListing(at(0), at(10), listed, complete=False)
    assert [r["id"] for r in listing.within(at(9), at(10))] == ["j"]
    # Runs of 08:00 may go on on the next page: an interval starting then is not covered.
    assert listing.within(at(8), at(9)) is None
    assert listing.within(at(1), at(2)) is None
    assert not runs.IntervalListing(at(0), at(10), [], complete=False).covers(at(9), at(10))
