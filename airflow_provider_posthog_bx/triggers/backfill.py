"""BatchExportBackfillTrigger: waits in the triggerer until a backfill reaches a final status."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_posthog_bx.core import statuses, waiting
from airflow_provider_posthog_bx.exceptions import PostHogError
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
    :param not_found_grace: the task's ``not_found_grace`` in seconds (bounds how long a
        cancel keeps trying through 404s).
    :param cancel_on_kill: cancel the backfill when a user kills the task (Airflow 3.3+).
    :param ours: whether the task started this backfill (returned in every event).
    :param carry: plain JSON the task gets back in every event (what it waits for next).
    :param deadline_reason: what the deadline stands for, returned as ``reason`` in the
        ``timeout`` event: ``"timeout"`` or ``"execution_timeout"``.
    """

    def __init__(
        self,
        *,
        backfill_id: str,
        not_found_until: float | None = None,
        not_found_grace: float = waiting.CANCEL_NOT_FOUND_SECONDS,
        cancel_on_kill: bool = True,
        ours: bool = True,
        deadline_reason: str = "timeout",
        carry: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.carry = carry
        self._notes = statuses.WaitNotes()
        self.backfill_id = backfill_id
        self.ours = ours
        self.deadline_reason = deadline_reason
        self.not_found_until = not_found_until
        self.not_found_grace = float(not_found_grace)
        self.cancel_on_kill = cancel_on_kill

    def arguments(self) -> dict[str, Any]:
        return {
            "backfill_id": self.backfill_id,
            "not_found_until": self.not_found_until,
            "not_found_grace": self.not_found_grace,
            "cancel_on_kill": self.cancel_on_kill,
            "ours": self.ours,
            "deadline_reason": self.deadline_reason,
            "carry": self.carry,
        }

    def event(self, status: str, **payload: Any) -> TriggerEvent:
        if status == waiting.TIMEOUT:
            payload["reason"] = self.deadline_reason
        return super().event(
            status, backfill_id=self.backfill_id, ours=self.ours, carry=self.carry, **payload
        )

    def timeout_message(self) -> str:
        return f"Backfill {self.backfill_id} is not finished at the deadline"

    async def poll(self, hook: AsyncPostHogHook) -> TriggerEvent | None:
        try:
            backfill = await hook.get_backfill_shared(
                self.batch_export_id, self.backfill_id, max_age=self.poll_interval
            )
        except PostHogError as error:
            if not waiting.NotFoundGrace(self.not_found_until).tolerates(error, time.time()):
                raise
            self.log.info("Backfill %s is not visible in PostHog yet", self.backfill_id)
            return None
        # Logged when it changes: a line per poll would cost every waiting task a log line
        # (and the triggerer its processing) every poll interval for hours.
        if (line := self._notes.changed(statuses.describe_backfill(backfill))) is not None:
            self.log.info("Backfill %s: %s", self.backfill_id, line)
        if (notice := self._notes.notice(statuses.status_of(backfill))) is not None:
            self.log.warning("%s", notice)
        if statuses.is_final(statuses.status_of(backfill)):
            # Only what the task reads: Airflow logs every event's payload whole.
            return self.event("final", backfill=statuses.summary(backfill))
        return None

    async def on_kill(self) -> None:
        """Cancel the backfill when a user kills the deferred task (Airflow 3.3+)."""
        if not self.cancel_on_kill:
            return
        hook = self.hook()
        attempts = waiting.CancelAttempts.start(
            self.backfill_id, self.not_found_grace, time.monotonic()
        )

        async def cancel() -> None:
            error = await self._try_cancel(hook)
            while (delay := attempts.after(error, time.monotonic())) is not None:
                await asyncio.sleep(delay)
                error = await self._try_cancel(hook)

        try:
            # Airflow gives on_kill 30 s ([triggerer] on_kill_timeout) before dropping it.
            await asyncio.wait_for(cancel(), waiting.CANCEL_NOT_FOUND_SECONDS + 5.0)
        except asyncio.TimeoutError:
            self.log.warning("Could not cancel backfill %s in time", self.backfill_id)
            return
        self.log.log(attempts.level, "%s", attempts.message)

    async def _try_cancel(self, hook: AsyncPostHogHook) -> PostHogError | None:
        try:
            await hook.cancel_backfill(self.batch_export_id, self.backfill_id)
        except PostHogError as error:
            return error
        return None


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
