"""BatchExportBackfillOperator inside real Airflow (dag.test()) against the PostHog emulator."""

from __future__ import annotations

import re
import threading
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from dag_runner import run_dag
from support import hour_range, task_log

from airflow_provider_posthog_bx.core.time import format_instant

BACKFILLS = r"/batch_exports/[^/]+/backfills/?$"


def backfill_task(task_id: str, export_id: str, start: Any, end: Any, **options: Any) -> str:
    args = ", ".join(f"{name}={value!r}" for name, value in options.items())
    return (
        f"BatchExportBackfillOperator(task_id={task_id!r}, batch_export_id={export_id!r}, "
        f"start_at={start!r}, end_at={end!r}, {args})\n"
    )


IMPORT = "from airflow_provider_posthog_bx.operators import BatchExportBackfillOperator\n"


def run_backfill(export_id: str, start: Any, end: Any, **options: Any) -> Any:
    """Run a DAG of one BatchExportBackfillOperator, task id ``backfill``."""
    return run_dag(IMPORT + backfill_task("backfill", export_id, start, end, **options))


def posts(emu: Any, status: int | None = None) -> list[Any]:
    return [
        r
        for r in emu.requests
        if r.method == "POST" and re.search(BACKFILLS, r.path) and status in (None, r.status)
    ]


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_backfill_succeeds_through_the_404_window(make_emulator: Any, deferrable: bool) -> None:
    emu = make_emulator(backfill_create_delay=1.0)
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=3)
    result = run_backfill(
        export["id"], start.isoformat(), end.isoformat(), poll_interval=0.3, deferrable=deferrable
    )
    assert result.ti_states == {"backfill": "success"}
    backfill_id = result.xcom("backfill")
    assert result.xcom("backfill", "backfill_id") == backfill_id
    assert emu.get_backfill(backfill_id)["status"] == "Completed"
    assert [r.body for r in posts(emu)] == [
        {"start_at": format_instant(start), "end_at": format_instant(end)}
    ]
    # PostHog 404s right after create; the operator waited through it.
    gets = [r.status for r in emu.requests if r.method == "GET" and backfill_id in r.path]
    assert gets[0] == 404 and gets[-1] == 200
    url = result.xcom("backfill", "batch_export_url")
    assert url == f"{emu.url}/project/{emu.project_id}/pipeline/batch-exports/{export['id']}"


def test_bad_inputs_fail_before_any_post(
    make_emulator: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_emulator()
    hourly = emu.create_batch_export(interval="hour")
    weekly = emu.create_batch_export(interval="week", offset_day=1)  # Mondays
    future = (emu.now() + timedelta(days=2)).replace(microsecond=0)
    cases = {
        "naive": (hourly, "2026-01-01T00:00:00", "2026-01-02T00:00:00+00:00"),
        "garbage": (hourly, "yesterday-ish", "2026-01-02T00:00:00+00:00"),
        "reversed": (hourly, "2026-01-02T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
        "future": (hourly, "2026-01-02T00:00:00+00:00", future.isoformat()),
        "weekday": (weekly, "2026-11-04", "2026-11-16"),  # a Wednesday
    }
    body = IMPORT + "".join(
        backfill_task(name, export["id"], start, end)
        for name, (export, start, end) in cases.items()
    )
    result = run_dag(body)
    log = task_log(capfd, caplog)
    assert set(result.ti_states.values()) == {"failed"}
    assert "start_at must be timezone-aware (got '2026-01-01T00:00:00')" in log
    assert "start_at is not a valid ISO datetime (got 'yesterday-ish')" in log
    assert "start_at must be before end_at (2026-01-01T00:00:00Z)" in log
    assert "end_at is in the future" in log
    assert (
        "start_at is a Wednesday but this batch export runs weekly on Monday (got '2026-11-04'); "
        "pass a Monday such as 2026-11-02" in log
    )
    assert posts(emu) == []
    # Input errors are not retried by Airflow: one try each.
    assert set(result.try_numbers.values()) == {1}


def test_daily_export_given_datetimes_sends_dates(make_emulator: Any) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="day")
    today = emu.now().date()
    start = datetime.combine(today - timedelta(days=3), datetime.min.time(), timezone.utc)
    end = start + timedelta(days=2)
    result = run_dag(
        IMPORT
        + backfill_task(
            "daily", export["id"], start.isoformat(), end.isoformat(), poll_interval=0.3
        )
    )
    assert result.ti_states == {"daily": "success"}
    assert [r.body for r in posts(emu)] == [
        {
            "start_at": (today - timedelta(days=3)).isoformat(),
            "end_at": (today - timedelta(days=1)).isoformat(),
        }
    ]
    backfill = emu.get_backfill(result.xcom("daily"))
    assert backfill["status"] == "Completed"
    assert backfill["progress"]["total_runs"] == 2


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_failed_run_inside_completed_backfill_fails_the_task(
    make_emulator: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    deferrable: bool,
) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=3)
    emu.fail_run(export["id"], start + timedelta(hours=1), error="Snowflake: warehouse suspended")
    result = run_backfill(
        export["id"],
        start.isoformat(),
        end.isoformat(),
        poll_interval=0.3,
        deferrable=deferrable,
        retries=2,
    )
    log = task_log(capfd, caplog)
    assert result.ti_states == {"backfill": "failed"}
    # A finished remote job is not retried by Airflow.
    assert result.try_numbers == {"backfill": 1}
    (backfill,) = emu.backfills(export["id"])
    assert backfill["status"] == "Completed"  # PostHog's view; the task knows better
    assert "is Completed but 1 of its runs did not succeed" in log
    assert "Snowflake: warehouse suspended" in log
    assert (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S") in log


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_cancelled_backfill_fails_with_status_and_error_logs(
    make_emulator: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    deferrable: bool,
) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=4)
    emu.add_log(export["id"], "Destination rejected credentials", level="ERROR")
    emu.script_next_backfill(export["id"], status="Cancelled", after_runs=1)
    result = run_backfill(
        export["id"], start.isoformat(), end.isoformat(), poll_interval=0.3, deferrable=deferrable
    )
    log = task_log(capfd, caplog)
    assert result.ti_states == {"backfill": "failed"}
    assert "ended Cancelled in PostHog" in log
    assert "Destination rejected credentials" in log


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_concurrency_cap_is_a_queue(
    make_emulator: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    deferrable: bool,
) -> None:
    emu = make_emulator(max_concurrent_backfills=1, run_seconds=0.3)
    export = emu.create_batch_export(interval="hour")
    from airflow_provider_posthog_bx.hooks import PostHogHook

    start, end = hour_range(emu, hours=4)
    blocking = PostHogHook().create_backfill(
        export["id"],
        (start - timedelta(hours=60)).isoformat(),
        (end - timedelta(hours=10)).isoformat(),
    )

    def free_the_slot_once_queued() -> None:
        deadline = time.monotonic() + 120
        while not posts(emu, 429) and time.monotonic() < deadline:
            time.sleep(0.05)
        emu.end_backfill(blocking, status="Cancelled")

    freer = threading.Thread(target=free_the_slot_once_queued, daemon=True)
    freer.start()
    result = run_backfill(
        export["id"], start.isoformat(), end.isoformat(), poll_interval=0.3, deferrable=deferrable
    )
    assert result.ti_states == {"backfill": "success"}
    log = task_log(capfd, caplog)
    assert "Queued: This team already has 1 batch export backfills running" in log
    # Deferrable tasks wait for the slot in the triggerer, not in a worker slot.
    assert ("Waited for a free backfill slot in the triggerer" in log) is deferrable
    assert len(posts(emu, 429)) >= 1
    assert len(posts(emu, 201)) == 2  # the blocking one and ours, nothing more
    assert emu.get_backfill(blocking)["status"] == "Cancelled"
    freer.join(5)


def test_retry_adopts_the_running_backfill_of_the_same_range(
    make_emulator: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_emulator(run_seconds=2)  # still running when the DAG run starts
    export = emu.create_batch_export(interval="hour")
    from airflow_provider_posthog_bx.hooks import PostHogHook

    start, end = hour_range(emu, hours=3)
    # What a crashed first try left behind: a backfill of this range, still running.
    earlier = PostHogHook().create_backfill(export["id"], start.isoformat(), end.isoformat())
    emu.advance(0.5)  # past PostHog's create delay, so the backfill is listed
    result = run_backfill(export["id"], start.isoformat(), end.isoformat(), poll_interval=0.3)
    assert result.ti_states == {"backfill": "success"}
    assert result.xcom("backfill") == earlier
    assert len(posts(emu)) == 1
    assert f"Adopting backfill {earlier}" in task_log(capfd, caplog)


def test_ambiguous_create_adopts_instead_of_posting_twice(
    make_emulator: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    # PostHog creates the backfill, then the connection drops before the answer arrives.
    emu.add_fault("POST", BACKFILLS, drop=True, process=True, times=1)
    start, end = hour_range(emu, hours=2)
    result = run_backfill(export["id"], start.isoformat(), end.isoformat(), poll_interval=0.3)
    assert result.ti_states == {"backfill": "success"}
    assert len(emu.backfills(export["id"])) == 1
    assert len(posts(emu)) == 1
    assert "The backfill may have been created" in task_log(capfd, caplog)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_timeout_cancels_the_backfill(
    make_emulator: Any,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    deferrable: bool,
) -> None:
    emu = make_emulator(run_seconds=5)
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=10)
    result = run_backfill(
        export["id"],
        start.isoformat(),
        end.isoformat(),
        poll_interval=0.3,
        timeout=1.5,
        deferrable=deferrable,
        retries=1,
    )
    assert result.ti_states == {"backfill": "failed"}
    assert result.try_numbers == {"backfill": 1}
    (backfill,) = emu.backfills(export["id"])
    assert backfill["status"] == "Cancelled"
    assert "did not finish within timeout=2 s; it was cancelled" in task_log(capfd, caplog)


def test_not_waiting_returns_once_created(make_emulator: Any) -> None:
    emu = make_emulator(run_seconds=5)
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=5)
    result = run_backfill(
        export["id"], start.isoformat(), end.isoformat(), wait_for_completion=False
    )
    assert result.ti_states == {"backfill": "success"}
    assert emu.get_backfill(result.xcom("backfill"))["status"] in ("Starting", "Running")


def test_dates_and_templates_are_accepted(make_emulator: Any) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="day")
    today = emu.now().date()
    result = run_dag(
        IMPORT
        + "BatchExportBackfillOperator(task_id='templated', batch_export_id="
        + repr(export["id"])
        + ", start_at='{{ macros.ds_add(ds, -3) }}', end_at='{{ macros.ds_add(ds, -1) }}', "
        + "poll_interval=0.3)\n",
        logical_date=datetime.combine(today, datetime.min.time(), timezone.utc),
    )
    assert result.ti_states == {"templated": "success"}
    assert posts(emu)[0].body == {
        "start_at": (today - timedelta(days=3)).isoformat(),
        "end_at": (today - timedelta(days=1)).isoformat(),
    }
    assert isinstance(today, date)
