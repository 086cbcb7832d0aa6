"""Waiting on PostHog: deadlines, the transient-error streak, the not-visible-yet grace, the
cancel schedule, and what a trigger's event means for the task.

The sync tasks (which sleep) and the triggers (which await) both drive these objects, so a wait
behaves the same in a worker and in the triggerer.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_posthog_bx.exceptions import (
    BatchExportJobFailed,
    PostHogError,
    PostHogNotFoundError,
    PostHogRateLimitError,
    PostHogServerError,
    PostHogTransportError,
)

# Errors worth waiting through: PostHog (or the way to it) may be fine at the next poll.
TRANSIENT_ERRORS = (PostHogTransportError, PostHogServerError, PostHogRateLimitError)

# How long a cancel keeps trying while a just-created backfill is still invisible (404). It
# must fit, with the requests themselves, in Airflow's 30 s limit on ``on_kill``.
CANCEL_NOT_FOUND_SECONDS = 20.0


def deadline_after(seconds: float | None, now: float) -> float | None:
    """The Unix time ``seconds`` from ``now`` (None: no deadline)."""
    return None if seconds is None else now + seconds


def next_wait(poll_interval: float, deadline: float | None, now: float) -> float:
    """Seconds to sleep before the next poll: the interval, cut short by the deadline."""
    if deadline is None:
        return poll_interval
    return max(0.0, min(poll_interval, deadline - now))


def is_past(deadline: float | None, now: float) -> bool:
    return deadline is not None and now >= deadline


@dataclass
class ErrorStreak:
    """Transient errors in a row while waiting; a success resets it.

    :param tolerated: errors in a row to wait through; the next one ends the wait.
    """

    tolerated: int
    count: int = 0

    def record(self, error: Exception) -> bool:
        """Count ``error``; whether the wait goes on (only transient errors are tolerated)."""
        if not isinstance(error, TRANSIENT_ERRORS):
            return False
        self.count += 1
        return self.count <= self.tolerated

    def reset(self) -> None:
        self.count = 0

    def warning(self, error: Exception) -> str:
        """The log line for a tolerated error."""
        return (
            f"PostHog error while waiting ({self.count} of {self.tolerated} tolerated in a row): "
            f"{error}"
        )

    def give_up_message(self, error: Exception) -> str:
        return f"{error} ({self.count} errors in a row)" if self.count else str(error)


@dataclass(frozen=True)
class NotFoundGrace:
    """PostHog creates a backfill's row asynchronously: until ``until`` (Unix time), a 404 for
    it means "not visible yet", after that it means gone."""

    until: float | None

    def tolerates(self, error: Exception, now: float) -> bool:
        return (
            isinstance(error, PostHogNotFoundError) and self.until is not None and now < self.until
        )


@dataclass
class CancelAttempts:
    """Cancelling a backfill: a just-created one 404s for a while, so try again each
    ``interval`` seconds for up to ``window`` seconds; any other outcome ends it.

    Drive it with ``while (delay := attempts.after(try_cancel(), now())) is not None:
    sleep(delay)``, then log :attr:`message` at :attr:`level`.
    """

    backfill_id: str
    started: float
    window: float = CANCEL_NOT_FOUND_SECONDS
    interval: float = 1.0
    message: str = ""
    level: int = logging.INFO
    cancelled: bool = False

    @classmethod
    def start(cls, backfill_id: str, not_found_grace: float, now: float) -> CancelAttempts:
        return cls(backfill_id, now, min(not_found_grace, CANCEL_NOT_FOUND_SECONDS))

    def after(self, error: PostHogError | None, now: float) -> float | None:
        """Seconds until the next try, or None when done."""
        if error is None:
            self.cancelled = True
            self.message = f"Cancelled backfill {self.backfill_id} in PostHog"
            return None
        if isinstance(error, PostHogNotFoundError) and now + self.interval < self.started + (
            self.window
        ):
            return self.interval
        self.level = logging.WARNING
        self.message = f"Could not cancel backfill {self.backfill_id}: {error}"
        return None


# --------------------------------------------------------------------------------------------
# Trigger events

# Every trigger can end with these besides its own statuses.
TIMEOUT = "timeout"
ERROR = "error"


def error_event(message: str, *, retryable: bool) -> dict[str, Any]:
    """The payload of an ``error`` event: ``retryable`` tells whether a task retry may help."""
    return {"status": ERROR, "message": message, "retryable": retryable}


def check_event(event: Any, kind: str, statuses: Collection[str]) -> dict[str, Any]:
    """The event a trigger sent, if it is one of ``statuses`` (``timeout`` included);
    an ``error`` event raises its error.

    :raises PostHogError: for a missing or unknown event, or an ``error`` event that a task
        retry may fix; :class:`BatchExportJobFailed` for one it cannot.
    """
    status = event.get("status") if isinstance(event, Mapping) else None
    if status == ERROR:
        assert isinstance(event, Mapping)
        message = str(event.get("message"))
        raise PostHogError(message) if event.get("retryable") else BatchExportJobFailed(message)
    if status != TIMEOUT and status not in statuses:
        raise PostHogError(f"{kind} trigger sent no usable event: {event!r}")
    return dict(event)
