"""Waiting rules both transports drive: streak, grace, cancel schedule, deadlines, events."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_posthog_bx.core import waiting
from airflow_provider_posthog_bx.exceptions import (
    BatchExportJobFailed,
    PostHogError,
    PostHogNotFoundError,
    PostHogServerError,
    PostHogTransportError,
    PostHogValidationError,
)


def api_error(cls, status):
    return cls(method="GET", path="/x/", status=status, detail="boom")


def test_error_streak_tolerates_transient_errors_in_a_row_only():
    streak = waiting.ErrorStreak(2)
    server = api_error(PostHogServerError, 500)
    assert streak.record(server) and streak.record(server)
    assert "2 of 2 tolerated in a row" in streak.warning(server)
    assert not streak.record(server)
    assert streak.give_up_message(server).endswith("(3 errors in a row)")
    streak.reset()
    assert streak.record(PostHogTransportError("GET", "/x/", "reset", sent=True))
    # PostHog refusing is never waited through.
    assert not waiting.ErrorStreak(5).record(api_error(PostHogValidationError, 400))


def test_not_found_grace_covers_404s_until_its_deadline_only():
    grace = waiting.NotFoundGrace(until=100.0)
    missing = api_error(PostHogNotFoundError, 404)
    assert grace.tolerates(missing, 99.0)
    assert not grace.tolerates(missing, 100.0)
    assert not grace.tolerates(api_error(PostHogServerError, 500), 99.0)
    assert not waiting.NotFoundGrace(None).tolerates(missing, 0.0)


def test_cancel_attempts_retry_404s_within_the_capped_window_then_stop():
    attempts = waiting.CancelAttempts.start("bf", not_found_grace=120.0, now=0.0)
    assert attempts.window == waiting.CANCEL_NOT_FOUND_SECONDS  # fits Airflow's on_kill limit
    missing = api_error(PostHogNotFoundError, 404)
    assert attempts.after(missing, 0.0) == 1.0
    assert attempts.after(missing, 18.5) == 1.0
    assert attempts.after(missing, 19.5) is None
    assert attempts.level == logging.WARNING and "Could not cancel backfill bf" in attempts.message
    assert not attempts.cancelled
    # A shorter not_found_grace shortens the window; any other error ends it at once.
    short = waiting.CancelAttempts.start("bf", not_found_grace=2.0, now=0.0)
    assert short.after(missing, 1.5) is None
    other = waiting.CancelAttempts.start("bf", 120.0, 0.0)
    assert other.after(api_error(PostHogValidationError, 400), 0.0) is None
    done = waiting.CancelAttempts.start("bf", 120.0, 0.0)
    assert done.after(None, 3.0) is None and done.cancelled
    assert done.message == "Cancelled backfill bf in PostHog" and done.level == logging.INFO


def test_deadlines():
    assert waiting.deadline_after(None, 10.0) is None
    assert waiting.deadline_after(5.0, 10.0) == 15.0
    assert waiting.next_wait(30.0, None, 0.0) == 30.0
    assert waiting.next_wait(30.0, 12.0, 10.0) == 2.0
    assert waiting.next_wait(30.0, 5.0, 10.0) == 0.0
    assert waiting.is_past(5.0, 5.0) and not waiting.is_past(None, 1e12)


def test_check_event_returns_known_events_and_raises_for_the_rest():
    assert waiting.check_event({"status": "final", "x": 1}, "Run", {"final"})["x"] == 1
    assert waiting.check_event({"status": "timeout"}, "Run", {"final"})["status"] == "timeout"
    for bad in (None, {}, {"status": "odd"}, "final"):
        with pytest.raises(PostHogError, match=r"^Run trigger sent no usable event"):
            waiting.check_event(bad, "Run", {"final"})
    retryable = waiting.error_event("flaky", retryable=True)
    with pytest.raises(PostHogError, match="flaky") as info:
        waiting.check_event(retryable, "Run", {"final"})
    assert not isinstance(info.value, BatchExportJobFailed)
    with pytest.raises(BatchExportJobFailed, match="refused"):
        waiting.check_event(waiting.error_event("refused", retryable=False), "Run", {"final"})
