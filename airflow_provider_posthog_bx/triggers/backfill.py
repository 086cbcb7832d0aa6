"""BatchExportBackfillTrigger: waits in the triggerer until a backfill reaches a final status."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_posthog_bx import api
from airflow_provider_posthog_bx.exceptions import PostHogError, PostHogNotFoundError
from airflow_provider_posthog_bx.triggers.base import PollingTrigger

if TYPE_CHECKING:
    from airflow_provider_posthog_bx._compat import TriggerEvent
    from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook


class BatchExportBackfillTrigger(PollingTrigger):
    """Poll a backfill until it is final.

    Yields exactly one event, a dict with ``status`` and ``backfill_id``: ``"final"`` with
    ``backfill`` as PostHog returned it, or ``"timeout"``/``"error"`` (see
    :class:`~airflow_provider_posthog_bx.triggers.base.PollingTrigger`).

    :param backfill_id: the backfill to wait for.
    :param not_found_until: Unix time until which a 404 means "not created yet" (PostHog
        creates the backfill row asynchronously).
    :param cancel_on_kill: cancel the backfill when a user kills the task (Airflow 3.3+).
    """

    def __init__(
        self,
        *,
        backfill_id: str,
        not_found_until: float | None = None,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backfill_id = backfill_id
        self.not_found_until = not_found_until
        self.cancel_on_kill = cancel_on_kill

    def arguments(self) -> dict[str, Any]:
        return {
            "backfill_id": self.backfill_id,
            "not_found_until": self.not_found_until,
            "cancel_on_kill": self.cancel_on_kill,
        }

    def event(self, status: str, **payload: Any) -> TriggerEvent:
        return super().event(status, backfill_id=self.backfill_id, **payload)

    def timeout_message(self) -> str:
        return f"Backfill {self.backfill_id} is not finished at the deadline"

    async def poll(self, hook: AsyncPostHogHook) -> TriggerEvent | None:
        try:
            backfill = await hook.get_backfill(self.batch_export_id, self.backfill_id)
        except PostHogNotFoundError:
            if self.not_found_until is None or time.time() >= self.not_found_until:
                raise
            self.log.info("Backfill %s is not visible in PostHog yet", self.backfill_id)
            return None
        self.log.info("Backfill %s: %s", self.backfill_id, api.describe_backfill(backfill))
        if api.is_final(str(backfill.get("status"))):
            return self.event("final", backfill=backfill)
        return None

    async def on_kill(self) -> None:
        """Cancel the backfill when a user kills the deferred task (Airflow 3.3+)."""
        if not self.cancel_on_kill:
            return
        hook = self.hook()
        # A just-created backfill 404s for a while: keep trying briefly (Airflow bounds on_kill).
        give_up = time.monotonic() + api.CANCEL_NOT_FOUND_SECONDS
        while True:
            try:
                await hook.cancel_backfill(self.batch_export_id, self.backfill_id)
            except PostHogNotFoundError as error:
                if time.monotonic() < give_up:
                    await asyncio.sleep(1.0)
                    continue
                self.log.warning("Could not cancel backfill %s: %s", self.backfill_id, error)
            except PostHogError as error:
                self.log.warning("Could not cancel backfill %s: %s", self.backfill_id, error)
            else:
                self.log.info("Cancelled backfill %s in PostHog", self.backfill_id)
            return


class BackfillSlotWaitTrigger(PollingTrigger):
    """Wait one ``poll_interval`` in the triggerer while the team's backfill slots are full.

    PostHog has no endpoint for the team's free slots, so this only waits; the task then tries
    to create the backfill again. Yields ``"slot_wait_over"`` (with ``deadline``) or
    ``"timeout"``.
    """

    def begin(self) -> None:
        self._waited = False

    async def poll(self, hook: AsyncPostHogHook) -> TriggerEvent | None:
        if not self._waited:
            self._waited = True
            self.log.info("Waiting %.1f s for a free backfill slot", self.poll_interval)
            return None
        return self.event("slot_wait_over", deadline=self.deadline)
