"""What every task of this provider shares: its connection, project, export, link, and the
Airflow side of waiting (resuming from a trigger, a sensor's timeout and soft_fail).

The backfill operator and the run sensor also derive from :class:`ExportedData`: the asset
events and OpenLineage facets of the data they saw exported.

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
    AIRFLOW_V_3_3_PLUS,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseOperator,
    asset_classes,
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


# ---------------------------------------------------------------------------------------------
# What a task that waited for exported data tells Airflow about it (the backfill operator and
# the run sensor): asset events through its outlets, OpenLineage facets. The rules (URIs,
# extras, dataset names) are pure, in ``assets`` and ``lineage``, imported on first use.


def combine_exported(extras: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One extra for several exported ranges (``skip_completed``'s backfills): the span they
    cover, their records added up, and their backfill ids."""
    if len(extras) == 1:
        return dict(extras[0])
    starts = [e["data_interval_start"] for e in extras if e.get("data_interval_start")]
    ends = [e["data_interval_end"] for e in extras if e.get("data_interval_end")]
    counts = [e.get("records_completed") for e in extras]
    combined: dict[str, Any] = {
        "batch_export_id": extras[0].get("batch_export_id"),
        "data_interval_start": min(starts) if starts else None,
        "data_interval_end": max(ends) if ends else None,
        "records_completed": None
        if any(c is None for c in counts)
        else sum(int(c or 0) for c in counts),
        "backfill_ids": [e.get("backfill_id") for e in extras],
    }
    return combined


class ExportedData(_Operator):
    """Asset events and lineage for data PostHog exported (a mixin of operators that derive
    from :class:`~airflow_provider_posthog_bx._task.BatchExportTask`)."""

    batch_export_id: str
    destination_uri: str | None
    partitioned_outlets: bool

    def record_exported(
        self,
        context: Any,
        export: Mapping[str, Any],
        extras: Sequence[Mapping[str, Any]],
        partition_keys: Sequence[str] = (),
    ) -> None:
        """Describe what was exported: asset events through ``outlets`` (every ``AssetAlias``
        gets one event per extra for the destination's asset; every concrete ``Asset`` gets
        the combined extra, and with ``partitioned_outlets`` on Airflow 3.3+ the partition
        keys), and what the OpenLineage facets will say."""
        self._exported = (dict(export), [dict(e) for e in extras])
        outlets = list(getattr(self, "outlets", None) or [])
        if not outlets or not extras:
            return
        events = context.get("outlet_events") if isinstance(context, Mapping) else None
        if events is None:
            self.log.warning("This Airflow gives the task no outlet_events: no asset events")
            return
        from airflow_provider_posthog_bx.assets import destination_uri

        asset_class, alias_class = asset_classes()
        uri = self.destination_uri or destination_uri(export)
        combined = combine_exported(extras)
        for outlet in outlets:
            if isinstance(outlet, alias_class):
                if uri is None:
                    self.log.warning(
                        "Outlet %r: PostHog does not say where this %s export writes; pass "
                        "destination_uri= to name the asset",
                        outlet,
                        _destination_type(export),
                    )
                    continue
                for extra in extras:
                    events[outlet].add(asset_class(uri=uri), extra=dict(extra))
                self.log.info("Asset event for %s through alias %r", uri, outlet)
            elif isinstance(outlet, asset_class):
                accessor = events[outlet]
                accessor.extra.update(combined)
                if self.partitioned_outlets and partition_keys:
                    if AIRFLOW_V_3_3_PLUS:
                        accessor.add_partitions(list(partition_keys))
                    else:
                        self.log.warning("Partitioned asset events need Airflow 3.3+")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage's inputs (the PostHog model), outputs (the destination) and run facets
        (the backfill or run id, the PostHog URL) of what this task saw exported; None before
        it saw anything or without the ``openlineage`` extra installed."""
        exported = getattr(self, "_exported", None)
        if exported is None:
            return None
        from airflow_provider_posthog_bx import lineage

        export, extras = exported
        hook = getattr(self, "hook")  # noqa: B009 (the BatchExportTask's hook)
        if "destination" not in export:  # not read for outlets: the destination names the output
            from airflow_provider_posthog_bx.exceptions import PostHogError

            try:
                export = hook.get_batch_export(self.batch_export_id)
            except PostHogError as error:
                self.log.warning("OpenLineage: could not read the batch export: %s", error)
        return lineage.operator_lineage(
            base_url=hook.settings.base_url,
            project_id=hook.project(),
            export=export,
            extras=extras,
        )


def _destination_type(export: Mapping[str, Any]) -> str:
    destination = export.get("destination")
    kind = destination.get("type") if isinstance(destination, Mapping) else None
    return str(kind or "unknown")
