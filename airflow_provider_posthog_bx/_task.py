"""What every task of this provider shares: its connection, project, export, link, and the
Airflow side of waiting (resuming from a trigger, a sensor's timeout and soft_fail).

Operators and sensors derive from :class:`BatchExportTask` (an operator, so Airflow applies
``default_args`` to its arguments too; sensors list it before ``BaseSensorOperator``); it owns
the constructor arguments ``batch_export_id``, ``posthog_conn_id`` and ``project_id``. The hook
is imported on first use, to keep DAG parsing cheap.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_posthog_bx._compat import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseOperator,
    conf,
)
from airflow_provider_posthog_bx._task_state import TaskRecord
from airflow_provider_posthog_bx.core import waiting
from airflow_provider_posthog_bx.exceptions import BatchExportJobFailed
from airflow_provider_posthog_bx.links.batch_export import (
    BatchExportLink,
    batch_export_url,
    push_batch_export_url,
)

if TYPE_CHECKING:
    from airflow_provider_posthog_bx.hooks.posthog import PostHogHook

UI_COLOR = "#f9bd2b"

# For the type checker the sensor rules are an operator's (``self.log``, ``soft_fail``); at run
# time they are a plain mixin.
if TYPE_CHECKING:
    _Operator = BaseOperator
else:
    _Operator = object


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable``."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


class BatchExportTask(BaseOperator):
    """The shared arguments of every task on one batch export.

    :param batch_export_id: the batch export (templated).
    :param posthog_conn_id: the Airflow connection to PostHog.
    :param project_id: the PostHog project id (templated); defaults to the connection's.
    """

    template_fields: Sequence[str] = ("batch_export_id", "project_id")
    operator_extra_links = (BatchExportLink(),)
    ui_color = UI_COLOR

    def __init__(
        self,
        *,
        batch_export_id: str,
        posthog_conn_id: str = "posthog_default",
        project_id: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_export_id = batch_export_id
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id

    @cached_property
    def hook(self) -> PostHogHook:
        from airflow_provider_posthog_bx.hooks.posthog import PostHogHook

        return PostHogHook(self.posthog_conn_id, self.project_id)

    def push_link(self, context: Any) -> str:
        """Push the export's PostHog URL to XCom (no API call) and return it."""
        url = batch_export_url(
            self.hook.settings.base_url, self.hook.project(), self.batch_export_id
        )
        push_batch_export_url(context, url)
        return url

    def trigger_args(self) -> dict[str, Any]:
        """The arguments every trigger of this task takes."""
        return {
            "posthog_conn_id": self.posthog_conn_id,
            "project_id": self.hook.project(),
            "batch_export_id": self.batch_export_id,
        }

    def tolerate(self, streak: waiting.ErrorStreak, error: Exception) -> bool:
        """Whether the wait goes on after ``error`` (a transient one, within the streak's
        tolerance); logs it if so."""
        if not streak.record(error):
            return False
        self.log.warning("%s", streak.warning(error))
        return True

    def resume(self, event: Any, kind: str, statuses: Collection[str]) -> dict[str, Any]:
        """The event a trigger resumed this task with; raises for a missing, unknown or
        ``error`` event (see :func:`~airflow_provider_posthog_bx.core.waiting.check_event`)."""
        return waiting.check_event(event, kind, statuses)


# Reschedule mode's count of transient errors in a row: each poke is a new worker process.
POKE_ERRORS_RECORD = "poke_errors"


class BatchExportSensorRules(_Operator):
    """How a sensor of this provider ends when it does not succeed: ``soft_fail`` turns a
    timeout or a failure into a skip, as for every Airflow sensor; a poke that hits a
    transient error waits on, ``max_consecutive_errors`` times in a row, in every mode."""

    soft_fail: bool
    reschedule: bool
    _streak: waiting.ErrorStreak

    def poke_failed(self, context: Any, error: Exception) -> bool:
        """Whether the sensor waits on after this poke's ``error`` (logged if so). In
        reschedule mode the count of errors in a row is kept in the task's durable record."""
        record = self._errors_record(context)
        if record is not None:
            stored = record.get() or {}
            self._streak.count = int(stored.get("count") or 0)
        if not self._streak.record(error):
            if record is not None:
                record.delete()
            return False
        self.log.warning("%s", self._streak.warning(error))
        if record is not None:
            record.set({"count": self._streak.count})
        return True

    def poke_succeeded(self, context: Any) -> None:
        """A poke got PostHog's answer: the errors in a row are over."""
        self._streak.reset()
        record = self._errors_record(context)
        if record is not None and record.get() is not None:
            record.delete()

    def _errors_record(self, context: Any) -> TaskRecord | None:
        if not self.reschedule or not isinstance(context, Mapping) or "ti" not in context:
            return None
        return TaskRecord.for_context(context, POKE_ERRORS_RECORD)

    def fail(self, message: str) -> NoReturn:
        if self.soft_fail:
            raise AirflowSkipException(f"{message} (skipped: soft_fail is set)")
        raise BatchExportJobFailed(message)

    def time_out(self, message: str) -> NoReturn:
        if self.soft_fail:
            raise AirflowSkipException(message)
        raise AirflowSensorTimeout(message)
