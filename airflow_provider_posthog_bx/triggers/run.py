"""BatchExportRunTrigger: waits in the triggerer for a batch export's run of one data interval.

Also holds the pure helpers the sensor shares with it: how to ask PostHog for the runs of an
interval and which of them is *the* run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_posthog_bx import api
from airflow_provider_posthog_bx.triggers.base import PollingTrigger

if TYPE_CHECKING:
    from airflow_provider_posthog_bx._compat import TriggerEvent
    from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

EVENT_STATUSES = frozenset({"final", "timeout", "error"})

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_z(value: datetime) -> str:
    """``2026-01-01T00:00:00Z``: UTC, microseconds only when non-zero."""
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


def interval_filters(start: datetime, end: datetime) -> dict[str, str]:
    """Run-list filters for the runs inside ``[start, end]``, whatever their age.

    Ordering by data interval makes PostHog filter on ``start``/``end`` instead of its
    default seven-day ``created_at`` window.
    """
    return {"ordering": "-data_interval_start", "start": iso_z(start), "end": iso_z(end)}


def pick_run(
    runs: Iterable[Mapping[str, Any]], start: datetime, end: datetime
) -> dict[str, Any] | None:
    """The run of exactly ``[start, end)``; the newest by ``created_at`` when several exist
    (retries, backfills), or None."""
    exact = [
        dict(run)
        for run in runs
        if api.parse_datetime(run.get("data_interval_start")) == start
        and api.parse_datetime(run.get("data_interval_end")) == end
    ]
    if not exact:
        return None
    return max(
        exact,
        key=lambda run: (api.parse_datetime(run.get("created_at")) or _EPOCH, str(run.get("id"))),
    )


def describe_run(run: Mapping[str, Any] | None) -> str:
    """One status line: ``Running (run 0190...)`` or ``no run yet``."""
    if run is None:
        return "no run yet"
    records = run.get("records_completed")
    done = f", {records} records" if records is not None else ""
    return f"{run.get('status')} (run {run.get('id')}{done})"


class BatchExportRunTrigger(PollingTrigger):
    """Poll a batch export's run of one data interval until it is final.

    Yields exactly one event, a dict with ``status``: ``"final"`` with ``run`` as PostHog
    returned it (any final status), or ``"timeout"``/``"error"`` (see
    :class:`~airflow_provider_posthog_bx.triggers.base.PollingTrigger`).

    :param data_interval_start: ISO start of the interval (UTC, e.g. ``2026-01-01T00:00:00Z``).
    :param data_interval_end: ISO end of the interval.
    """

    def __init__(self, *, data_interval_start: str, data_interval_end: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_interval_start = data_interval_start
        self.data_interval_end = data_interval_end
        self._last_line = "not checked yet"

    def arguments(self) -> dict[str, Any]:
        return {
            "data_interval_start": self.data_interval_start,
            "data_interval_end": self.data_interval_end,
        }

    def timeout_message(self) -> str:
        return (
            f"The run of {self.data_interval_start} - {self.data_interval_end} is not finished "
            f"at the deadline ({self._last_line})"
        )

    async def poll(self, hook: AsyncPostHogHook) -> TriggerEvent | None:
        start = api.parse_datetime(self.data_interval_start)
        end = api.parse_datetime(self.data_interval_end)
        if start is None or end is None:
            message = (
                f"unusable data interval {self.data_interval_start!r} - {self.data_interval_end!r}"
            )
            return self.event("error", message=message, retryable=False)
        runs = await hook.list_runs(self.batch_export_id, **interval_filters(start, end))
        run = pick_run(runs, start, end)
        line = describe_run(run)
        if line != self._last_line:
            self.log.info(
                "Batch export %s, interval %s - %s: %s",
                self.batch_export_id,
                self.data_interval_start,
                self.data_interval_end,
                line,
            )
            self._last_line = line
        if run is not None and api.is_final(str(run.get("status"))):
            return self.event("final", run=run)
        return None
