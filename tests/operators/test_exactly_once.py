"""Exactly one backfill per task instance: retries, lost answers, timeouts, adopted work.

Each case was reproduced on 0.1.0 (bb0ba74), where it created a second backfill of the range
(or cancelled somebody else's). Every test counts backfill POSTs in the emulator.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from support import hour_range, task_log

from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_posthog_bx.core.time import format_instant
from airflow_provider_posthog_bx.hooks import PostHogHook

from .test_backfill_operator import posts, run_backfill

RUNS = r"/batch_exports/[^/]+/runs/?$"

# Airflow 2's dag.test() lets a worker's AirflowTaskTimeout (a BaseException, raised by the
# SIGALRM handler) escape from dag.test() itself instead of failing the try; a real 2.10 worker
# calls on_kill and retries, which the deferrable variant and the e2e suite cover.
sync_timeout_needs_airflow_3 = pytest.mark.skipif(
    not AIRFLOW_V_3_0_PLUS, reason="Airflow 2's dag.test() does not run a timed-out try's retry"
)


class Code(str):
    """An argument written into the generated DAG file as code, not as a literal."""

    def __repr__(self) -> str:
        return str(self)


def seconds(value: float) -> Code:
    return Code(f"dt.timedelta(seconds={value})")


def backfill_by_id(emu: Any, backfill_id: str) -> str:
    return rf"/batch_exports/[^/]+/backfills/{re.escape(backfill_id)}/?$"


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_retry_after_a_failure_at_completion_finishes_from_the_same_backfill(
    make_emulator: Any, deferrable: bool
) -> None:
    # Case 1 (and the quick-resume race, case 5): the backfill completes, then the try fails
    # (here a 500 on the failed-runs read); the retry finds no Starting/Running backfill.
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    emu.add_fault("GET", RUNS, status=500, times=1)
    start, end = hour_range(emu, hours=2)
    result = run_backfill(
        export["id"],
        start.isoformat(),
        end.isoformat(),
        poll_interval=0.3,
        deferrable=deferrable,
        retries=1,
        retry_delay=0,
    )
    assert result.ti_states == {"backfill": "success"}
    assert result.try_numbers == {"backfill": 2}
    assert len(posts(emu)) == 1
    (backfill,) = emu.backfills(export["id"])
    assert result.xcom("backfill") == backfill["id"] and backfill["status"] == "Completed"


def test_lost_answer_of_a_backfill_that_finished_quickly_is_found_not_recreated(
    make_emulator: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Case 2: PostHog applied the create, the answer was lost, and the backfill was already
    # Completed when the operator looked: 0.1.0 only adopted Starting/Running ones.
    emu = make_emulator(backfill_starting_seconds=0.05, run_seconds=0.05)
    export = emu.create_batch_export(interval="hour")
    emu.add_fault("POST", r"/backfills/?$", drop=True, process=True, times=1)
    start, end = hour_range(emu, hours=1)
    result = run_backfill(
        export["id"], start.isoformat(), end.isoformat(), poll_interval=0.5, not_found_grace=5
    )
    assert result.ti_states == {"backfill": "success"}
    assert len(posts(emu)) == 1
    assert len(emu.backfills(export["id"])) == 1
    assert "the create did reach PostHog" in task_log(capfd, caplog)


def test_retry_inside_the_404_window_resumes_the_recorded_backfill(make_emulator: Any) -> None:
    # Case 3: the first try fails right after the create, while PostHog has not made the row
    # visible yet (so the listing cannot show it to the retry).
    emu = make_emulator(backfill_create_delay=4.0)
    export = emu.create_batch_export(interval="hour")
    emu.add_fault("GET", r"/backfills/[^/]+/?$", status=500, times=1)
    start, end = hour_range(emu, hours=2)
    result = run_backfill(
        export["id"],
        start.isoformat(),
        end.isoformat(),
        poll_interval=0.3,
        retries=1,
        retry_delay=0,
    )
    assert result.ti_states == {"backfill": "success"}
    assert result.try_numbers == {"backfill": 2}
    assert len(posts(emu)) == 1


@pytest.mark.parametrize(
    "deferrable",
    [pytest.param(False, marks=sync_timeout_needs_airflow_3), True],
    ids=["sync", "deferrable"],
)
def test_execution_timeout_with_retries_left_does_not_cancel_and_the_retry_reattaches(
    make_emulator: Any, deferrable: bool
) -> None:
    # Case 4: 0.1.0 cancelled on every execution_timeout, so each retry started from start_at.
    emu = make_emulator(run_seconds=1.0)
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=5)  # about 5 s of runs
    result = run_backfill(
        export["id"],
        start.isoformat(),
        end.isoformat(),
        poll_interval=0.3,
        deferrable=deferrable,
        execution_timeout=seconds(3),
        retries=3,
        retry_delay=0,
    )
    assert result.ti_states == {"backfill": "success"}
    assert result.try_numbers["backfill"] >= 2
    assert len(posts(emu)) == 1
    (backfill,) = emu.backfills(export["id"])
    assert backfill["status"] == "Completed"


@pytest.mark.parametrize(
    "deferrable",
    [pytest.param(False, marks=sync_timeout_needs_airflow_3), True],
    ids=["sync", "deferrable"],
)
def test_execution_timeout_on_the_last_try_cancels(make_emulator: Any, deferrable: bool) -> None:
    emu = make_emulator(run_seconds=2.0)
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=10)
    result = run_backfill(
        export["id"],
        start.isoformat(),
        end.isoformat(),
        poll_interval=0.3,
        deferrable=deferrable,
        execution_timeout=seconds(2),
    )
    assert result.ti_states == {"backfill": "failed"}
    assert len(posts(emu)) == 1
    (backfill,) = emu.backfills(export["id"])
    assert backfill["status"] == "Cancelled"


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_an_adopted_backfill_is_never_cancelled_by_the_adopter(
    make_emulator: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    deferrable: bool,
) -> None:
    # Case 6: somebody else's Running backfill of the range is waited for, not duplicated,
    # and a timeout leaves it running.
    emu = make_emulator(run_seconds=5)
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=10)
    theirs = PostHogHook().create_backfill(export["id"], start.isoformat(), end.isoformat())
    emu.advance(0.5)  # past PostHog's create delay, so the backfill is listed
    result = run_backfill(
        export["id"],
        start.isoformat(),
        end.isoformat(),
        poll_interval=0.3,
        timeout=1.5,
        deferrable=deferrable,
    )
    assert result.ti_states == {"backfill": "failed"}
    assert len(posts(emu)) == 1  # theirs only
    assert emu.get_backfill(theirs)["status"] == "Running"
    log = task_log(capfd, caplog)
    assert "it was left running" in log and f"Not cancelling backfill {theirs}" in log


def test_without_durable_a_retry_behaves_as_before(make_emulator: Any) -> None:
    # The record is what makes case 1 safe: with durable=False the retry cannot know.
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    emu.add_fault("GET", RUNS, status=500, times=1)
    start, end = hour_range(emu, hours=2)
    result = run_backfill(
        export["id"],
        start.isoformat(),
        end.isoformat(),
        poll_interval=0.3,
        retries=1,
        retry_delay=0,
        durable=False,
    )
    assert result.ti_states == {"backfill": "success"}
    assert len(posts(emu)) == 2


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_skip_completed_backfills_only_the_gaps_one_backfill_each(
    make_emulator: Any, deferrable: bool
) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=6)
    hour = timedelta(hours=1)
    # Hours 1 and 4 were exported; hour 2 failed; hours 0, 2-3 and 5 are missing.
    emu.add_run(export["id"], start + hour, start + 2 * hour, status="Completed")
    emu.add_run(export["id"], start + 2 * hour, start + 3 * hour, status="Failed")
    emu.add_run(export["id"], start + 4 * hour, start + 5 * hour, status="Completed")
    result = run_backfill(
        export["id"],
        start.isoformat(),
        end.isoformat(),
        poll_interval=0.3,
        deferrable=deferrable,
        skip_completed=True,
    )
    assert result.ti_states == {"backfill": "success"}
    sent = [(r.body["start_at"], r.body["end_at"]) for r in posts(emu)]
    iso = format_instant
    assert sent == [
        (iso(start), iso(start + hour)),
        (iso(start + 2 * hour), iso(start + 4 * hour)),
        (iso(start + 5 * hour), iso(end)),
    ]
    ids = result.xcom("backfill")
    assert ids == result.xcom("backfill", "backfill_ids") and len(ids) == 3
    assert {emu.get_backfill(i)["status"] for i in ids} == {"Completed"}


def test_skip_completed_with_nothing_missing_sends_no_backfill(make_emulator: Any) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=2)
    for h in range(2):
        emu.add_run(export["id"], start + timedelta(hours=h), start + timedelta(hours=h + 1))
    result = run_backfill(export["id"], start.isoformat(), end.isoformat(), skip_completed=True)
    assert result.ti_states == {"backfill": "success"}
    assert result.xcom("backfill") == []
    assert posts(emu) == []


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_older_posthog_answering_a_workflow_id_is_followed_by_the_backfill_row(
    make_emulator: Any, deferrable: bool
) -> None:
    # Case 7: older self-hosted PostHog answers a create with a Temporal workflow id that
    # GET .../backfills/{id} does not know; 0.1.0 polled it into a 404 and failed.
    emu = make_emulator(legacy_deployment="workflow-ids")
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=2)
    result = run_backfill(
        export["id"], start.isoformat(), end.isoformat(), poll_interval=0.3, deferrable=deferrable
    )
    assert result.ti_states == {"backfill": "success"}
    assert emu.backfill_creates(export["id"]) == 1
    (row,) = emu.backfills(export["id"])
    assert result.xcom("backfill") == row["id"] and row["status"] == "Completed"


def test_older_posthog_without_backfill_routes_is_followed_through_its_runs(
    make_emulator: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Case 7, the oldest variant: only POST .../backfill/ and the runs; 0.1.0 listed backfills
    # first and failed on the 404.
    emu = make_emulator(legacy_deployment="no-backfills")
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=3)
    result = run_backfill(export["id"], start.isoformat(), end.isoformat(), poll_interval=0.3)
    assert result.ti_states == {"backfill": "success"}
    assert emu.backfill_creates(export["id"]) == 1
    assert "-Backfill-" in result.xcom("backfill")  # the workflow id, all that PostHog gave
    log = task_log(capfd, caplog)
    assert "following backfill" in log and "3/3 runs finished" in log

    emu.fail_run(export["id"], start - timedelta(hours=2), error="disk full")
    failed = run_backfill(
        export["id"], (start - timedelta(hours=3)).isoformat(), start.isoformat(), poll_interval=0.3
    )
    assert failed.ti_states == {"backfill": "failed"}
    assert emu.backfill_creates(export["id"]) == 2
    log = task_log(capfd, caplog)
    assert "1 of its runs did not succeed" in log and "disk full" in log


def test_skip_completed_retry_resumes_every_gap_backfill_instead_of_posting_again(
    make_emulator: Any,
) -> None:
    emu = make_emulator(backfill_create_delay=1.0)
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=4)
    hour = timedelta(hours=1)
    emu.add_run(export["id"], start + hour, start + 2 * hour, status="Completed")
    # The first status check fails the try after both gap backfills were created.
    emu.add_fault("GET", r"/backfills/[^/]+/?$", status=500, times=1)
    result = run_backfill(
        export["id"],
        start.isoformat(),
        end.isoformat(),
        poll_interval=0.3,
        skip_completed=True,
        retries=1,
        retry_delay=0,
    )
    assert result.ti_states == {"backfill": "success"}
    assert result.try_numbers == {"backfill": 2}
    assert len(posts(emu)) == 2  # hour 0, and hours 2-3: once each
    assert len(result.xcom("backfill")) == 2


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_an_unknown_status_keeps_the_wait_going_and_is_logged_once(
    make_emulator: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    deferrable: bool,
) -> None:
    # 0.1.0 took any status it did not know as final ("ended None" / "ended Paused").
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=2)
    odd = {"id": "x", "status": "Paused", "start_at": None, "end_at": None}
    emu.add_fault("GET", r"/backfills/[^/]+/?$", body=odd, times=4)
    result = run_backfill(
        export["id"], start.isoformat(), end.isoformat(), poll_interval=0.3, deferrable=deferrable
    )
    assert result.ti_states == {"backfill": "success"}
    assert len(posts(emu)) == 1
    # Once per waiting process (the worker's check before deferring, then the trigger), not
    # once per poll.
    notice = "PostHog reports the status 'Paused'"
    if AIRFLOW_V_3_0_PLUS:  # task logs on stdout
        count = task_log(capfd, caplog).count(notice)
    else:  # task logs through logging (stdout repeats them)
        count = sum(notice in record.getMessage() for record in caplog.records)
    assert count == (2 if deferrable else 1)
