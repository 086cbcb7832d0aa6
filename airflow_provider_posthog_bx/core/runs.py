"""Runs: finding the run of a data interval, and the runs of a backfill that did not succeed."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_posthog_bx.core.statuses import (
    COMPLETED,
    FAILED,
    IN_FLIGHT,
    is_final,
    status_of,
)
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


@dataclass(frozen=True)
class IntervalListing:
    """A run listing of :func:`interval_filters` for ``[low, high]`` (newest interval first,
    cursor pages), which answers the same listing of any interval inside it as PostHog would
    (PostHog's rule: ``data_interval_start >= start`` and ``data_interval_end <= end``): what
    one listing read for many run waits on one export holds.

    :param runs: the runs listed, in PostHog's order.
    :param complete: whether every page was read; if not, only the runs starting after the
        last one listed are all there, and an interval starting at or before it is not covered.
    """

    low: datetime
    high: datetime
    runs: Sequence[Mapping[str, Any]]
    complete: bool = True
    _starts: list[datetime] = field(init=False, repr=False)  # ascending
    _rows: list[tuple[datetime, Mapping[str, Any]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rows = []
        for run in reversed(self.runs):  # PostHog's order reversed: oldest interval first
            start = from_posthog(run.get("data_interval_start"))
            end = from_posthog(run.get("data_interval_end"))
            if start is not None and end is not None:  # PostHog lists no other
                rows.append((start, end, run))
        rows.sort(key=lambda row: row[0])  # stable: ties keep PostHog's order, reversed
        object.__setattr__(self, "_starts", [start for start, _, _ in rows])
        object.__setattr__(self, "_rows", [(end, run) for _, end, run in rows])

    def covers(self, start: datetime, end: datetime) -> bool:
        """Whether every run the listing of ``[start, end]`` would show is in this one."""
        if not (self.low <= start and end <= self.high):
            return False
        if self.complete:
            return True
        return bool(self._starts) and start > self._starts[0]

    def within(self, start: datetime, end: datetime) -> list[dict[str, Any]] | None:
        """The runs the listing of ``[start, end]`` would show, in its order; None if this
        listing does not cover that interval."""
        if not self.covers(start, end):
            return None
        first = bisect_left(self._starts, start)
        found = [dict(run) for run_end, run in self._rows[first:] if run_end <= end]
        found.reverse()
        return found


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


WATCH_PAGE_SIZE = 100
"""PostHog's run-list page (cursor pagination, no page-size override): one poll of a watch
reads this many of the newest runs."""


@dataclass
class RunWatch:
    """Which runs of a batch export have reached a final status since a watch began: the
    edge-triggered rule of :class:`~airflow_provider_posthog_bx.triggers.run_event.
    BatchExportRunEventTrigger`.

    The first listing is the baseline: runs already final then never fire. Afterwards each run
    fires once, on the first listing that shows it final. ``handled`` holds the ids of final
    runs with their ``created_at``, only for runs still inside the listing window (older ones
    cannot be listed again), so the state stays small: about one window of runs.

    :param handled: run id -> ``created_at`` (ISO) of each final run already seen.
    :param baselined: whether the first listing has been taken.
    """

    handled: dict[str, str] = field(default_factory=dict)
    baselined: bool = False

    def step(
        self,
        listed: Iterable[Mapping[str, Any]],
        now: datetime,
        window: timedelta,
        statuses: frozenset[str] = frozenset({COMPLETED}),
    ) -> list[dict[str, Any]]:
        """Take one listing (runs created within ``window`` of ``now``); return the runs that
        became final since the last one and whose status is in ``statuses``, oldest interval
        first."""
        fired: list[dict[str, Any]] = []
        for run in listed:
            run_id, status = run.get("id"), status_of(run)
            if not isinstance(run_id, str) or not is_final(status) or run_id in self.handled:
                continue
            self.handled[run_id] = str(run.get("created_at") or format_instant(now))
            if self.baselined and status in statuses:
                fired.append(dict(run))
        self.baselined = True
        horizon = now - window - timedelta(hours=1)  # an hour of slack for clock skew
        self.handled = {
            run_id: created
            for run_id, created in self.handled.items()
            if (from_posthog(created) or now) >= horizon
        }
        fired.sort(key=lambda run: (str(run.get("data_interval_start")), str(run.get("id"))))
        return fired

    def to_json(self) -> dict[str, Any]:
        return {"handled": dict(self.handled), "baselined": self.baselined}

    @classmethod
    def from_json(cls, data: Any) -> RunWatch:
        """The stored state, or a new watch (baseline first) if it is missing or unusable."""
        if not isinstance(data, Mapping) or not isinstance(data.get("handled"), Mapping):
            return cls()
        handled = {str(k): str(v) for k, v in data["handled"].items()}
        return cls(handled, bool(data.get("baselined")))


def watch_payload(run: Mapping[str, Any], batch_export_id: str) -> dict[str, Any]:
    """What a watcher's event says about a run (plain JSON, the fields a downstream DAG
    reads)."""
    return {
        "batch_export_id": batch_export_id,
        "id": run.get("id"),
        "data_interval_start": run.get("data_interval_start"),
        "data_interval_end": run.get("data_interval_end"),
        "status": run.get("status"),
        "records_completed": run.get("records_completed"),
        "bytes_exported": run.get("bytes_exported"),
        "backfill": run.get("backfill"),
    }
