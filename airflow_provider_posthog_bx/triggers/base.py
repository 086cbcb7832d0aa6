"""What the provider's triggers share: plain-JSON arguments, the async hook and the poll loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow_provider_posthog_bx._compat import BaseTrigger, TriggerEvent
from airflow_provider_posthog_bx.core import waiting
from airflow_provider_posthog_bx.exceptions import PostHogError

if TYPE_CHECKING:
    from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook


class PollingTrigger(BaseTrigger):
    """Polls PostHog until :meth:`poll` returns an event, the deadline passes, or PostHog keeps
    failing; yields exactly one event, a dict with ``status`` and ``batch_export_id``.

    Besides a subclass's own events: ``"timeout"`` (``message``) when the deadline passed first,
    and ``"error"`` (``message``, ``retryable``: whether a task retry may help) when PostHog
    refused, or failed more than ``max_consecutive_errors`` times in a row
    (see :mod:`airflow_provider_posthog_bx.core.waiting`).

    Every argument is plain JSON (Airflow stores it and a restarted triggerer rebuilds the
    trigger from it), so deadlines are absolute Unix times.

    Each run has its own hook; when the wait ends (event, timeout, error or cancel) the hook
    leaves the shared reads its polls joined (see
    :mod:`~airflow_provider_posthog_bx.hooks.sharing`).

    :param poll_interval: seconds between two polls.
    :param deadline: Unix time after which the wait gives up (None: wait forever).
    :param max_consecutive_errors: transient API errors in a row tolerated before giving up.
    """

    def __init__(
        self,
        *,
        posthog_conn_id: str,
        project_id: int | str | None,
        batch_export_id: str,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        max_consecutive_errors: int = 5,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id
        self.batch_export_id = batch_export_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.max_consecutive_errors = max_consecutive_errors

    def arguments(self) -> dict[str, Any]:
        """The subclass's own constructor arguments, as plain JSON."""
        return {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "posthog_conn_id": self.posthog_conn_id,
                "project_id": self.project_id,
                "batch_export_id": self.batch_export_id,
                **self.arguments(),
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_consecutive_errors": self.max_consecutive_errors,
            },
        )

    def hook(self) -> AsyncPostHogHook:
        from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

        return AsyncPostHogHook(self.posthog_conn_id, self.project_id)

    def begin(self) -> None:
        """Set up the state of one ``run`` (called before the first poll)."""

    async def poll(self, hook: AsyncPostHogHook) -> TriggerEvent | None:
        """Check PostHog once: the final event, or None to poll again."""
        raise NotImplementedError

    def event(self, status: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "batch_export_id": self.batch_export_id, **payload})

    def timeout_message(self) -> str:
        return f"Batch export {self.batch_export_id}: the wait is not over at the deadline"

    def next_wait(self) -> float:
        """Seconds until the next poll."""
        return self.poll_interval

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        try:
            event = await self._wait(hook)
        finally:
            # This wait no longer counts in its export's shared reads (also when cancelled).
            hook.leave_shared()
        yield event

    async def _wait(self, hook: AsyncPostHogHook) -> TriggerEvent:
        """Poll until the wait is over; its one event."""
        self.begin()
        streak = waiting.ErrorStreak(self.max_consecutive_errors)
        while True:
            try:
                event = await self.poll(hook)
            except PostHogError as error:
                if not streak.record(error):
                    # A task retry may help after transient errors, never after PostHog
                    # refused or the connection is misconfigured.
                    retryable = isinstance(error, waiting.TRANSIENT_ERRORS)
                    payload = waiting.error_event(
                        streak.give_up_message(error) if retryable else str(error),
                        retryable=retryable,
                    )
                    return self.event(**payload)
                self.log.warning("%s", streak.warning(error))
            else:
                streak.reset()
                if event is not None:
                    return event
            now = time.time()
            if waiting.is_past(self.deadline, now):
                return self.event(waiting.TIMEOUT, message=self.timeout_message())
            await asyncio.sleep(waiting.next_wait(self.next_wait(), self.deadline, now))
