"""BatchExportRunSensor: wait for PostHog's run of one data interval to complete."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn

from airflow_provider_posthog_bx._compat import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)
from airflow_provider_posthog_bx.links.batch_export import BatchExportLink
from airflow_provider_posthog_bx.operators.base import BatchExportTaskMixin


class BatchExportRunSensor(BatchExportTaskMixin, BaseSensorOperator):  # type: ignore[misc,unused-ignore]
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
    :param max_consecutive_errors: deferrable mode: transient API errors in a row tolerated.
    :param posthog_conn_id: the Airflow connection to PostHog.
    :param project_id: the PostHog project id (templated); defaults to the connection's.
    """

    template_fields: Sequence[str] = (
        "batch_export_id",
        "project_id",
        "data_interval_start",
        "data_interval_end",
    )
    operator_extra_links = (BatchExportLink(),)
    ui_color = "#f9bd2b"

    def __init__(
        self,
        *,
        batch_export_id: str,
        data_interval_start: datetime | str = "{{ data_interval_start }}",
        data_interval_end: datetime | str = "{{ data_interval_end }}",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_consecutive_errors: int = 5,
        posthog_conn_id: str = "posthog_default",
        project_id: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_export_id = batch_export_id
        self.data_interval_start = data_interval_start
        self.data_interval_end = data_interval_end
        self.deferrable = deferrable
        self.max_consecutive_errors = max_consecutive_errors
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id
        self._last_line: str | None = None

    def _interval(self) -> tuple[datetime, datetime]:
        """The rendered interval as aware UTC datetimes; a clear error if unusable."""
        from airflow_provider_posthog_bx.exceptions import PostHogInputError
        from airflow_provider_posthog_bx.log_cursor import parse_instant

        bounds = []
        for param in ("data_interval_start", "data_interval_end"):
            value = getattr(self, param)
            if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
                raise PostHogInputError(
                    param,
                    value,
                    "is empty: this DAG run has no data interval (a manual run on Airflow 3?)",
                    "pass data_interval_start and data_interval_end explicitly",
                )
            bounds.append(parse_instant(param, value))
        start, end = bounds
        if start == end:
            raise PostHogInputError(
                "data_interval_start",
                start.isoformat(),
                "equals data_interval_end: the DAG run's data interval is empty (on Airflow 3 "
                "a cron string schedule gives empty intervals)",
                "schedule the DAG with CronDataIntervalTimetable (e.g. "
                "CronDataIntervalTimetable('0 * * * *', timezone='UTC') for an hourly export), "
                "or pass the bounds explicitly",
            )
        if start > end:
            raise PostHogInputError(
                "data_interval_start",
                start.isoformat(),
                f"must be before data_interval_end ({end.isoformat()})",
                "pass the bounds of one interval of the batch export",
            )
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
        if run is not None and _is_final(run):
            return self._finish(run)
        self._defer(start, end, deadline)
        return None

    def poke(self, context: Any) -> bool | PokeReturnValue:
        start, end = self._interval()
        run = self._find(start, end)
        if run is None or not _is_final(run):
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(run))

    def _find(self, start: datetime, end: datetime) -> dict[str, Any] | None:
        from airflow_provider_posthog_bx.triggers.run import (
            describe_run,
            interval_filters,
            pick_run,
        )

        runs = self.hook.list_runs(self.batch_export_id, **interval_filters(start, end))
        run = pick_run(runs, start, end)
        line = describe_run(run)
        if line != self._last_line:
            self.log.info("Run of %s - %s: %s", start.isoformat(), end.isoformat(), line)
            self._last_line = line
        return run

    def _defer(self, start: datetime, end: datetime, deadline: float) -> None:
        from airflow_provider_posthog_bx.triggers.run import BatchExportRunTrigger, iso_z

        remaining = deadline - time.time()
        if remaining <= 0:
            self._time_out()
        self.defer(
            trigger=BatchExportRunTrigger(
                posthog_conn_id=self.posthog_conn_id,
                project_id=self.hook.project(),
                batch_export_id=self.batch_export_id,
                data_interval_start=iso_z(start),
                data_interval_end=iso_z(end),
                poll_interval=float(self.poke_interval),
                deadline=deadline,
                max_consecutive_errors=self.max_consecutive_errors,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=remaining),
        )

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        """Resume after the trigger fired; fails loudly on a missing or unknown event."""
        from airflow_provider_posthog_bx.exceptions import BatchExportJobFailed, PostHogError
        from airflow_provider_posthog_bx.triggers.run import EVENT_STATUSES

        if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
            raise AirflowException(f"Run trigger sent no usable event: {event!r}")
        status = event["status"]
        if status == "final":
            if not isinstance(event.get("run"), dict):
                raise AirflowException(f"Run trigger sent a final event without a run: {event!r}")
            return self._finish(event["run"])
        if status == "timeout":
            self._time_out(str(event.get("message") or ""))
        message = str(event.get("message"))
        if event.get("retryable"):
            raise PostHogError(message)
        raise BatchExportJobFailed(message)

    def _finish(self, run: dict[str, Any]) -> dict[str, Any]:
        from airflow_provider_posthog_bx import api
        from airflow_provider_posthog_bx.exceptions import BatchExportJobFailed

        status = run.get("status")
        interval = f"{run.get('data_interval_start')} - {run.get('data_interval_end')}"
        if status == api.COMPLETED:
            self.log.info(
                "Run %s of %s completed: %s records exported",
                run.get("id"),
                interval,
                run.get("records_completed"),
            )
            return run
        message = (
            f"Run {run.get('id')} of batch export {self.batch_export_id} for {interval} ended "
            f"{status} in PostHog: {run.get('latest_error') or 'no error message'}"
        )
        if self.soft_fail:
            raise AirflowSkipException(f"{message} (skipped: soft_fail is set)")
        raise BatchExportJobFailed(message)

    def _time_out(self, detail: str = "") -> NoReturn:
        message = (
            f"The run of batch export {self.batch_export_id} did not complete within "
            f"timeout={float(self.timeout):.0f} s"
        )
        if detail:
            message += f": {detail}"
        if self.soft_fail:
            raise AirflowSkipException(message)
        raise AirflowSensorTimeout(message)


def _is_final(run: dict[str, Any]) -> bool:
    from airflow_provider_posthog_bx import api

    return api.is_final(str(run.get("status")))
