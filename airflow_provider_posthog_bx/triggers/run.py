"""BatchExportRunTrigger: waits in the triggerer for a batch export's run of one data interval."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_posthog_bx.core import runs, statuses
from airflow_provider_posthog_bx.core.time import from_posthog
from airflow_provider_posthog_bx.core.waiting import error_event
from airflow_provider_posthog_bx.triggers.base import PollingTrigger

if TYPE_CHECKING:
    from airflow_provider_posthog_bx._compat import TriggerEvent
    from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

EVENT_STATUSES = frozenset({"final"})


class BatchExportRunTrigger(PollingTrigger):
    """Poll a batch export's run of one data interval until it is final.

    Yields exactly one event, a dict with ``status``: ``"final"`` with ``run`` as PostHog
    returned it (any final status), or ``"timeout"``/``"error"`` (see
    :class:`~airflow_provider_posthog_bx.triggers.base.PollingTrigger`).

    The run waits on one export in one triggerer share one run listing a poll round (see
    :meth:`~airflow_provider_posthog_bx.hooks.posthog_async.AsyncPostHogHook.list_runs_shared`).

    :param data_interval_start: ISO start of the interval (UTC, e.g. ``2026-01-01T00:00:00Z``).
    :param data_interval_end: ISO end of the interval.
    """

    def __init__(self, *, data_interval_start: str, data_interval_end: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_interval_start = data_interval_start
        self.data_interval_end = data_interval_end
        self._notes = statuses.WaitNotes()

    def arguments(self) -> dict[str, Any]:
        return {
            "data_interval_start": self.data_interval_start,
            "data_interval_end": self.data_interval_end,
        }

    def timeout_message(self) -> str:
        return (
            f"The run of {self.data_interval_start} - {self.data_interval_end} is not finished "
            f"at the deadline ({self._notes.last_line or 'not checked yet'})"
        )

    async def poll(self, hook: AsyncPostHogHook) -> TriggerEvent | None:
        start = from_posthog(self.data_interval_start)
        end = from_posthog(self.data_interval_end)
        if start is None or end is None:
            message = (
                f"unusable data interval {self.data_interval_start!r} - {self.data_interval_end!r}"
            )
            return self.event(**error_event(message, retryable=False))
        # The runs inside the interval, from the listing shared by the run waits on the export.
        listed = await hook.list_runs_shared(
            self.batch_export_id, start, end, max_age=self.poll_interval
        )
        run = runs.pick_run(listed, start, end)
        if (line := self._notes.changed(statuses.describe_run(run))) is not None:
            self.log.info(
                "Batch export %s, interval %s - %s: %s",
                self.batch_export_id,
                self.data_interval_start,
                self.data_interval_end,
                line,
            )
        if run is not None and statuses.is_final(statuses.status_of(run)):
            return self.event("final", run=run)
        return None
