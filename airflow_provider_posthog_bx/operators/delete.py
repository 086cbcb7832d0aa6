"""DeleteOperator: delete a retired batch export."""

from __future__ import annotations

from typing import Any

from airflow_provider_posthog_bx._task import BatchExportTask
from airflow_provider_posthog_bx.exceptions import PostHogNotFoundError


class DeleteOperator(BatchExportTask):
    """Delete a batch export; PostHog also cancels its running backfills and runs.

    Returns True if this task deleted it, False if it was already gone (with ``missing_ok``).
    A 404 counts as deleted only after a try of this task may have reached PostHog (its answer
    was lost: a dropped connection, a read timeout, a 502 or 504); after a 503 or a failure to
    connect it means the export does not exist.

    :param batch_export_id: the batch export to delete (templated).
    :param missing_ok: succeed when the export does not exist (already deleted); otherwise a
        404 fails the task.
    :param posthog_conn_id: the Airflow connection to PostHog.
    :param project_id: the PostHog project id (templated); defaults to the connection's.
    """

    def __init__(self, *, missing_ok: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.missing_ok = missing_ok

    def execute(self, context: Any) -> bool:
        self.push_link(context)
        try:
            self.hook.delete_batch_export(self.batch_export_id)
        except PostHogNotFoundError as error:
            if error.earlier_may_have_applied:
                # An earlier try's answer was lost on the way back (a dropped connection, a
                # timeout, a 502/504): that try deleted it.
                self.log.info(
                    "Batch export %s was deleted by an earlier try whose answer was lost",
                    self.batch_export_id,
                )
                return True
            if not self.missing_ok:
                raise PostHogNotFoundError(
                    method=error.method,
                    path=error.path,
                    status=error.status,
                    type=error.type,
                    code=error.code,
                    attr=error.attr,
                    attempts=error.attempts,
                    detail=f"{error.detail} Batch export {self.batch_export_id} does not exist "
                    "in this project (already deleted?); pass missing_ok=True to accept that",
                ) from error
            self.log.info("Batch export %s does not exist; nothing to delete", self.batch_export_id)
            return False
        self.log.info("Deleted batch export %s", self.batch_export_id)
        return True
