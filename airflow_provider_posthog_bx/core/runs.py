"""Runs: finding the run of a data interval, and the runs of a backfill that did not succeed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow_provider_posthog_bx.core.statuses import COMPLETED, FAILED, IN_FLIGHT, status_of
from airflow_provider_posthog_bx.core.time import UTC, format_instant, from_posthog

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def interval_filters(start: datetime, end: datetime) -> dict[str, str]:
    """Run-list filters for the runs inside ``[start, end]``, whatever their age.

    Ordering by data interval makes PostHog filter on ``start``/``end`` instead of its
    default seven-day ``created_at`` window.
    """
    return {
        "ordering": "-data_interval_start",
        "start": format_instant(start),
        "end": format_instant(end),
    }


def failed_run_filters(start: datetime, end: datetime) -> dict[str, Any]:
    """Run-list filters for the runs of ``[start, end]`` that ended without succeeding: one
    filtered listing instead of every run of the range."""
    return {**interval_filters(start, end), "status": sorted(FAILED)}


def is_run_of(run: Mapping[str, Any], start: datetime, end: datetime) -> bool:
    """Whether ``run`` exported exactly ``[start, end)``."""
    return (
        from_posthog(run.get("data_interval_start")) == start
        and from_posthog(run.get("data_interval_end")) == end
    )


def pick_run(
    runs: Iterable[Mapping[str, Any]], start: datetime, end: datetime
) -> dict[str, Any] | None:
    """The run of exactly ``[start, end)``; the newest by ``created_at`` when several exist
    (retries, backfills), or None."""
    exact = [dict(run) for run in runs if is_run_of(run, start, end)]
    if not exact:
        return None
    return max(
        exact,
        key=lambda run: (from_posthog(run.get("created_at")) or _EPOCH, str(run.get("id"))),
    )


def failed_runs_of(runs: Iterable[Mapping[str, Any]], backfill_id: str) -> list[dict[str, Any]]:
    """The runs of backfill ``backfill_id`` that ended without succeeding."""
    return [
        dict(run) for run in runs if run.get("backfill") == backfill_id and status_of(run) in FAILED
    ]


def describe_failed_runs(runs: Iterable[Mapping[str, Any]]) -> str:
    """One indented line per failed run: interval, status and PostHog's ``latest_error``."""
    return "".join(
        f"\n  {run.get('data_interval_start')} - {run.get('data_interval_end')}: "
        f"{status_of(run)}: {run.get('latest_error') or 'no error message'}"
        for run in runs
    )


Interval = tuple[datetime, datetime]


def gaps(
    intervals: Sequence[Interval],
    listed: Iterable[Mapping[str, Any]],
    covered: Iterable[Interval] = (),
) -> list[Interval]:
    """The intervals nobody has exported or is exporting, merged into contiguous ranges.

    An interval is covered by a run of exactly it that is ``Completed``, ``Starting`` or
    ``Running`` (PostHog's own rule in its ``backfill_batch_export_runs`` command), or by a
    range in ``covered`` (backfills already started for it).
    """
    done = {
        (from_posthog(run.get("data_interval_start")), from_posthog(run.get("data_interval_end")))
        for run in listed
        if status_of(run) == COMPLETED or status_of(run) in IN_FLIGHT
    }
    ranges = list(covered)
    missing: list[Interval] = []
    for start, end in intervals:
        if (start, end) in done or any(low <= start and end <= high for low, high in ranges):
            continue
        if missing and missing[-1][1] == start:
            missing[-1] = (missing[-1][0], end)
        else:
            missing.append((start, end))
    return missing


def runs_since(
    intervals: Sequence[Interval], listed: Iterable[Mapping[str, Any]], since: datetime
) -> list[dict[str, Any] | None]:
    """Per interval, the newest run of exactly it created at or after ``since`` (None if none):
    how a backfill is followed on an older PostHog that offers nothing but its runs."""
    fresh = [run for run in listed if (from_posthog(run.get("created_at")) or _EPOCH) >= since]
    return [pick_run(fresh, start, end) for start, end in intervals]
