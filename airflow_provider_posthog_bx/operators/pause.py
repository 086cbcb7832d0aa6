"""PauseOperator and UnpauseOperator: stop and restart a batch export's schedule."""

from __future__ import annotations

from typing import Any

from airflow_provider_posthog_bx._task import BatchExportTask


class _SetPausedOperator(BatchExportTask):
    target_paused: bool

    def execute(self, context: Any) -> bool:
        self.push_link(context)
        export = self.hook.get_batch_export(self.batch_export_id)
        state = "paused" if self.target_paused else "unpaused"
        if bool(export.get("paused")) == self.target_paused:
            self.log.info(
                "Batch export %r (%s) is already %s; nothing to do",
                export.get("name"),
                self.batch_export_id,
                state,
            )
            return self.target_paused
        answer = self._switch()
        paused = bool(answer.get("paused", self.target_paused))
        self.log.info(
            "Batch export %r (%s) is now %s", export.get("name"), self.batch_export_id, state
        )
        return paused

    def _switch(self) -> dict[str, Any]:
        raise NotImplementedError


class PauseOperator(_SetPausedOperator):
    """Pause a batch export's schedule (success if it is already paused). Returns ``True``.

    :param batch_export_id: the batch export to pause (templated).
    :param posthog_conn_id: the Airflow connection to PostHog.
    :param project_id: the PostHog project id (templated); defaults to the connection's.
    """

    target_paused = True

    def _switch(self) -> dict[str, Any]:
        return self.hook.pause_batch_export(self.batch_export_id)


class UnpauseOperator(_SetPausedOperator):
    """Unpause a batch export's schedule (success if it is not paused). Returns ``False``.

    :param batch_export_id: the batch export to unpause (templated).
    :param backfill: also backfill the window the export was paused for (PostHog's option).
    :param posthog_conn_id: the Airflow connection to PostHog.
    :param project_id: the PostHog project id (templated); defaults to the connection's.
    """

    target_paused = False

    def __init__(self, *, backfill: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backfill = backfill

    def _switch(self) -> dict[str, Any]:
        if self.backfill:
            self.log.info("Asking PostHog to backfill the window the export was paused for")
        return self.hook.unpause_batch_export(self.batch_export_id, backfill=self.backfill)
