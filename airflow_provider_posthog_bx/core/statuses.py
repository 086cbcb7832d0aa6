"""Run and backfill statuses, and the one-line descriptions the task log shows.

PostHog adds statuses from time to time, so :func:`is_final` is conservative: only a status
known to be final ends a wait; an unknown or missing one is taken as still in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STARTING = "Starting"
RUNNING = "Running"
COMPLETED = "Completed"

IN_FLIGHT = frozenset({STARTING, RUNNING})
FAILED = frozenset(
    {
        "Cancelled",
        "Failed",
        "FailedRetryable",
        "FailedBilling",  # runs only
        "Terminated",
        "TimedOut",
    }
)
FINAL = frozenset({COMPLETED, "ContinuedAsNew"} | FAILED)
KNOWN = IN_FLIGHT | FINAL


def status_of(item: Mapping[str, Any] | None) -> str:
    """The ``status`` of a run or backfill as PostHog returned it (``""`` if missing)."""
    status = item.get("status") if item is not None else None
    return status if isinstance(status, str) else ""


def is_final(status: str) -> bool:
    """Whether a run or backfill status is final; unknown statuses are not."""
    return status in FINAL


def is_known(status: str) -> bool:
    return status in KNOWN


@dataclass(slots=True)  # one per waiting task, thousands in a triggerer
class WaitNotes:
    """What one wait logs as it polls, so that a long wait's log stays short: its status line
    only when the line changes, and a warning the first time PostHog reports a status this
    provider does not know."""

    last_line: str | None = None
    unknown: frozenset[str] = frozenset()  # shared while empty: thousands of waits hold one

    def changed(self, line: str) -> str | None:
        """``line`` if it differs from the last line logged (it becomes the last), else None."""
        if line == self.last_line:
            return None
        self.last_line = line
        return line

    def notice(self, status: str) -> str | None:
        """A warning the first time ``status`` is met and not known, else None."""
        if is_known(status) or status in self.unknown:
            return None
        self.unknown |= {status}
        return (
            f"PostHog reports the status {status!r}, which this provider does not know; it is "
            "taken as still in flight (the wait goes on until a known final status)"
        )


# What a finished backfill tells the task: its status line, its range and when it ran.
SUMMARY_FIELDS = (
    "id",
    "status",
    "progress",
    "start_at",
    "end_at",
    "created_at",
    "finished_at",
    "total_records_count",
)


def summary(backfill: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a backfill that its task reads (a trigger event carries only these)."""
    return {name: backfill[name] for name in SUMMARY_FIELDS if name in backfill}


def describe_backfill(backfill: Mapping[str, Any]) -> str:
    """One progress line: ``Running, 3/10 runs finished (30%)``."""
    status = status_of(backfill) or "no status"
    progress = backfill.get("progress")
    if not isinstance(progress, Mapping):
        return status
    finished = progress.get("finished_runs")
    total = progress.get("total_runs")
    share = progress.get("progress")
    # PostHog rounds ``progress`` to one decimal; the run counts give the exact share.
    if isinstance(finished, int) and isinstance(total, int) and total > 0:
        share = finished / total
    percent = f" ({share * 100:.0f}%)" if isinstance(share, (int, float)) else ""
    return f"{status}, {finished}/{total} runs finished{percent}"


def describe_run(run: Mapping[str, Any] | None) -> str:
    """One status line: ``Running (run 0190...)`` or ``no run yet``."""
    if run is None:
        return "no run yet"
    records = run.get("records_completed")
    done = f", {records} records" if records is not None else ""
    return f"{status_of(run) or 'no status'} (run {run.get('id')}{done})"
