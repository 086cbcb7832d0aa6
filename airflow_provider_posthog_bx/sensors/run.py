"""BatchExportRunSensor: wait for PostHog's run of one data interval to complete."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_posthog_bx._compat import BaseSensorOperator, PokeReturnValue
from airflow_provider_posthog_bx._task import (
    BatchExportSensorRules,
    BatchExportTask,
    ExportedData,
    default_deferrable,
)
from airflow_provider_posthog_bx.core import runs, statuses, waiting
from airflow_provider_posthog_bx.core.bounds import parse_interval
from airflow_provider_posthog_bx.core.time import format_instant
from airflow_provider_posthog_bx.exceptions import PostHogError


class BatchExportRunSensor(
    ExportedData, BatchExportTask, BatchExportSensorRules, BaseSensorOperator
):  # type: ignore[misc,unused-ignore]
    """Wait until PostHog's run of a data interval is ``Completed``; return the run.

    Waits while no run of exactly ``[data_interval_start, data_interval_end)`` exists yet or
    it is Starting/Running. Fails (``soft_fail``: skips) when the run ends in any other final
    status (Failed, FailedRetryable, FailedBilling, Cancelled, Terminated, TimedOut, ...),
    with PostHog's ``latest_error``. When several runs cover the interval (retries,
    backfills), the newest by ``created_at`` decides. Intervals of any age work: runs are
    looked up by data interval, not by PostHog's default seven-day ``created_at`` window.

    :param batch_export_id: the batch export (templated).
    :param data_interval_start: start of the interval: an aware datetime or an ISO string
        with an offset (templated; default ``"{{ data_interval_start }}"``, i.e. this DAG
        run's own interval, which must line up with the export's schedule).
    :param data_interval_end: end of the interval, exclusive (templated; default
        ``"{{ data_interval_end }}"``).
    :param deferrable: wait in the triggerer instead of a worker slot. Defaults to Airflow's
        ``[operators] default_deferrable``.
    :param max_consecutive_errors: transient API errors in a row tolerated while waiting, in
        every mode (in reschedule mode counted across pokes, in the task's durable record).
    :param destination_uri: the asset URI of what the export writes, for the asset event sent
        through an ``AssetAlias`` in ``outlets``; default
        :func:`~airflow_provider_posthog_bx.assets.destination_uri` of the export.
    :param partitioned_outlets: on Airflow 3.3+, give the events of the concrete Assets in
        ``outlets`` the interval's partition key (Airflow then queues only partition-aware
        DAGs on them).
    :param posthog_conn_id: the Airflow connection to PostHog.
    :param project_id: the PostHog project id (templated); defaults to the connection's.

    When the run is Completed, every ``AssetAlias`` in ``outlets`` gets an event for the
    destination's asset and every concrete Asset's event the same ``extra``:
    ``batch_export_id``, ``data_interval_start``/``data_interval_end`` (ISO),
    ``records_completed``, ``bytes_exported``, ``run_id`` and ``partition_key``.
    """

    template_fields: Sequence[str] = (
        *BatchExportTask.template_fields,
        "data_interval_start",
        "data_interval_end",
    )

    def __init__(
        self,
        *,
        data_interval_start: datetime | str = "{{ data_interval_start }}",
        data_interval_end: datetime | str = "{{ data_interval_end }}",
        deferrable: bool | None = None,
        max_consecutive_errors: int = 5,
        destination_uri: str | None = None,
        partitioned_outlets: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination_uri = destination_uri
        self.partitioned_outlets = partitioned_outlets
        self.data_interval_start = data_interval_start
        self.data_interval_end = data_interval_end
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.max_consecutive_errors = max_consecutive_errors
        self._notes = statuses.WaitNotes()
        self._streak = waiting.ErrorStreak(max_consecutive_errors)

    def _interval(self) -> tuple[datetime, datetime]:
        """The rendered interval as aware UTC datetimes; a clear error if unusable."""
        start, end = parse_interval(
            "data_interval_start",
            self.data_interval_start,
            "data_interval_end",
            self.data_interval_end,
        )
        assert isinstance(start, datetime) and isinstance(end, datetime)
        return start, end

    def execute(self, context: Any) -> Any:
        start, end = self._interval()  # fails before any request
        url = self.push_link(context)
        self.log.info(
            "Waiting for the run of batch export %s for %s - %s: %s",
            self.batch_export_id,
            start.isoformat(),
            end.isoformat(),
            url,
        )
        if not self.deferrable:
            return super().execute(context)
        deadline = time.time() + float(self.timeout)
        run = self._find(start, end)
        if run is not None and statuses.is_final(statuses.status_of(run)):
            return self._finish(context, run)
        self._defer(start, end, deadline)
        return None

    def poke(self, context: Any) -> bool | PokeReturnValue:
        start, end = self._interval()
        try:
            run = self._find(start, end)
        except PostHogError as error:
            if not self.poke_failed(context, error):
                raise
            return False
        self.poke_succeeded(context)
        if run is None or not statuses.is_final(statuses.status_of(run)):
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, run))

    def _find(self, start: datetime, end: datetime) -> dict[str, Any] | None:
        listed = self.hook.list_runs(self.batch_export_id, **runs.interval_filters(start, end))
        run = runs.pick_run(listed, start, end)
        if (line := self._notes.changed(statuses.describe_run(run))) is not None:
            self.log.info("Run of %s - %s: %s", start.isoformat(), end.isoformat(), line)
        return run

    def _defer(self, start: datetime, end: datetime, deadline: float) -> None:
        from airflow_provider_posthog_bx.triggers.run import BatchExportRunTrigger

        remaining = deadline - time.time()
        if remaining <= 0:
            self._time_out()
        self.defer(
            trigger=BatchExportRunTrigger(
                **self.trigger_args(),
                data_interval_start=format_instant(start),
                data_interval_end=format_instant(end),
                poll_interval=float(self.poke_interval),
                deadline=deadline,
                max_consecutive_errors=self.max_consecutive_errors,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=remaining),
        )

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        """Resume after the trigger fired; fails loudly on a missing or unknown event."""
        event = self.resume(event, "Run", {"final"})
        if event["status"] == waiting.TIMEOUT:
            self._time_out(str(event.get("message") or ""))
        if not isinstance(event.get("run"), dict):
            raise PostHogError(f"Run trigger sent a final event without a run: {event!r}")
        return self._finish(context, event["run"])

    def _finish(self, context: Any, run: dict[str, Any]) -> dict[str, Any]:
        status = statuses.status_of(run)
        interval = f"{run.get('data_interval_start')} - {run.get('data_interval_end')}"
        if status == statuses.COMPLETED:
            self.log.info(
                "Run %s of %s completed: %s records exported",
                run.get("id"),
                interval,
                run.get("records_completed"),
            )
            export: dict[str, Any] = {"id": self.batch_export_id}
            if getattr(self, "outlets", None):  # the destination and timezone name the asset
                export = self.hook.get_batch_export(self.batch_export_id)
            from airflow_provider_posthog_bx.assets import run_exported

            extra, keys = run_exported(export, self.batch_export_id, run)
            self.record_exported(context, export, [extra], keys)
            return run
        self.fail(
            f"Run {run.get('id')} of batch export {self.batch_export_id} for {interval} ended "
            f"{status} in PostHog: {run.get('latest_error') or 'no error message'}"
        )

    def _time_out(self, detail: str = "") -> None:
        message = (
            f"The run of batch export {self.batch_export_id} did not complete within "
            f"timeout={float(self.timeout):.0f} s"
        )
        self.time_out(f"{message}: {detail}" if detail else message)
