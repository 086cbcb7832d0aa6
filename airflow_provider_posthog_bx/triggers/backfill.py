"""BatchExportBackfillTrigger: waits in the triggerer until a backfill reaches a final status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow_provider_posthog_bx import api
from airflow_provider_posthog_bx._compat import BaseTrigger, TriggerEvent
from airflow_provider_posthog_bx.exceptions import (
    PostHogAPIError,
    PostHogError,
    PostHogNotFoundError,
    PostHogRateLimitError,
    PostHogServerError,
    PostHogTransportError,
)

TRANSIENT_ERRORS = (PostHogTransportError, PostHogServerError, PostHogRateLimitError)


class BatchExportBackfillTrigger(BaseTrigger):
    """Poll a backfill until it is final, the deadline passes, or PostHog keeps failing.

    Yields exactly one event, a dict with ``status``:

    - ``"final"``: ``backfill`` holds the backfill as PostHog returned it;
    - ``"timeout"``: the deadline passed first;
    - ``"error"``: ``message`` says why; ``retryable`` tells whether a task retry may help.

    Every argument is plain JSON, so the trigger survives serialisation and a triggerer
    restart: deadlines are absolute Unix timestamps.

    :param backfill_id: the backfill to wait for.
    :param poll_interval: seconds between two checks.
    :param deadline: Unix time after which the wait gives up (None: wait forever).
    :param not_found_until: Unix time until which a 404 means "not created yet".
    :param max_consecutive_errors: transient API errors in a row tolerated before giving up.
    :param cancel_on_kill: cancel the backfill when a user kills the task (Airflow 3.3+).
    """

    def __init__(
        self,
        *,
        posthog_conn_id: str,
        project_id: int | str | None,
        batch_export_id: str,
        backfill_id: str,
        poll_interval: float,
        deadline: float | None = None,
        not_found_until: float | None = None,
        max_consecutive_errors: int = 5,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id
        self.batch_export_id = batch_export_id
        self.backfill_id = backfill_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.not_found_until = not_found_until
        self.max_consecutive_errors = max_consecutive_errors
        self.cancel_on_kill = cancel_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "posthog_conn_id": self.posthog_conn_id,
                "project_id": self.project_id,
                "batch_export_id": self.batch_export_id,
                "backfill_id": self.backfill_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "not_found_until": self.not_found_until,
                "max_consecutive_errors": self.max_consecutive_errors,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _hook(self) -> Any:
        from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

        return AsyncPostHogHook(self.posthog_conn_id, self.project_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        errors = 0
        while True:
            try:
                backfill = await hook.get_backfill(self.batch_export_id, self.backfill_id)
            except PostHogNotFoundError as error:
                if self.not_found_until is None or time.time() >= self.not_found_until:
                    yield self._error(error, retryable=False)
                    return
                self.log.info("Backfill %s is not visible in PostHog yet", self.backfill_id)
            except TRANSIENT_ERRORS as error:
                errors += 1
                if errors > self.max_consecutive_errors:
                    yield self._error(error, retryable=True, after=errors)
                    return
                self.log.warning(
                    "PostHog error while waiting (%d of %d tolerated in a row): %s",
                    errors,
                    self.max_consecutive_errors,
                    error,
                )
            except PostHogError as error:
                yield self._error(error, retryable=not isinstance(error, PostHogAPIError))
                return
            else:
                errors = 0
                self.log.info("Backfill %s: %s", self.backfill_id, api.describe_backfill(backfill))
                if api.is_final(str(backfill.get("status"))):
                    yield TriggerEvent({"status": "final", "backfill": backfill})
                    return
            remaining = None if self.deadline is None else self.deadline - time.time()
            if remaining is not None and remaining <= 0:
                yield TriggerEvent(
                    {
                        "status": "timeout",
                        "backfill_id": self.backfill_id,
                        "message": f"Backfill {self.backfill_id} is not finished at the deadline",
                    }
                )
                return
            await asyncio.sleep(
                self.poll_interval if remaining is None else min(self.poll_interval, remaining)
            )

    def _error(
        self, error: Exception, *, retryable: bool, after: int | None = None
    ) -> TriggerEvent:
        message = str(error) if after is None else f"{error} ({after} errors in a row)"
        return TriggerEvent(
            {
                "status": "error",
                "backfill_id": self.backfill_id,
                "message": message,
                "retryable": retryable,
            }
        )

    async def on_kill(self) -> None:
        """Cancel the backfill when a user kills the deferred task (Airflow 3.3+)."""
        if not self.cancel_on_kill:
            return
        try:
            await self._hook().cancel_backfill(self.batch_export_id, self.backfill_id)
            self.log.info("Cancelled backfill %s in PostHog", self.backfill_id)
        except PostHogError as error:
            self.log.warning("Could not cancel backfill %s: %s", self.backfill_id, error)
