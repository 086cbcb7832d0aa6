"""Killing a waiting backfill task, the trigger's round trip, and event validation."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from dag_runner import dags_folder
from support import hour_range, task_log

from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS, AirflowException
from airflow_provider_posthog_bx.core import statuses
from airflow_provider_posthog_bx.triggers.backfill import BatchExportBackfillTrigger

KILL_DAG = """
import pendulum
from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_posthog_bx.operators import BatchExportBackfillOperator
if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG
else:
    from airflow import DAG
with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
    BatchExportBackfillOperator(
        task_id="backfill", batch_export_id="{export_id}", start_at="{start}", end_at="{end}",
        poll_interval=0.5,
    )
"""


def test_killing_the_task_cancels_its_backfill(make_emulator: Any) -> None:
    """SIGTERM to a real ``airflow tasks test`` process: Airflow calls on_kill, which cancels."""
    emu = make_emulator(run_seconds=5)
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=10)
    dag_id = f"kill_{int(time.time() * 1000)}"
    path: Path = dags_folder() / f"dagtest_{dag_id}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        KILL_DAG.format(
            dag_id=dag_id, export_id=export["id"], start=start.isoformat(), end=end.isoformat()
        )
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    try:
        if AIRFLOW_V_3_0_PLUS:
            subprocess.run(
                [airflow, "dags", "reserialize"],
                env=env,
                check=True,
                capture_output=True,
                timeout=120,
            )
        task = subprocess.Popen(
            [airflow, "tasks", "test", dag_id, "backfill"],
            env=env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                backfills = emu.backfills(export["id"])
                if backfills and backfills[0]["status"] == "Running":
                    break
                assert task.poll() is None, task.communicate()[0][-3000:]
                time.sleep(0.2)
            else:
                pytest.fail("the backfill never started running")
            os.killpg(task.pid, signal.SIGTERM)
            output = task.communicate(timeout=60)[0]
        finally:
            if task.poll() is None:
                os.killpg(task.pid, signal.SIGKILL)
                task.wait()
    finally:
        path.unlink(missing_ok=True)
    (backfill,) = emu.backfills(export["id"])
    assert backfill["status"] == "Cancelled", output[-3000:]
    assert f"Cancelled backfill {backfill['id']} in PostHog" in output
    assert emu.count("POST", r"/backfills/[^/]+/cancel/?$") == 1


def test_trigger_round_trip_resumes_waiting(make_emulator: Any) -> None:
    """Kwargs are plain JSON, and a trigger rebuilt from them (a restarted triggerer) waits on."""
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=2)
    from airflow_provider_posthog_bx.hooks import PostHogHook

    backfill_id = PostHogHook().create_backfill(export["id"], start.isoformat(), end.isoformat())
    trigger = BatchExportBackfillTrigger(
        posthog_conn_id="posthog_default",
        project_id=emu.project_id,
        batch_export_id=export["id"],
        backfill_id=backfill_id,
        poll_interval=0.2,
        deadline=time.time() + 60,
        not_found_until=time.time() + 30,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_posthog_bx.triggers.backfill.BatchExportBackfillTrigger"
    revived_kwargs = json.loads(json.dumps(kwargs))  # what the metadata DB gives back
    assert revived_kwargs == kwargs
    revived = BatchExportBackfillTrigger(**revived_kwargs)
    assert revived.serialize() == (classpath, kwargs)
    assert emu.api_key not in repr(revived)

    async def first_event() -> Any:
        events = [event async for event in revived.run()]
        return events

    events = asyncio.run(first_event())
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "final"
    assert payload["backfill"]["id"] == backfill_id
    assert payload["backfill"]["status"] == "Completed"
    # Airflow logs the whole payload ("Trigger fired event"): only what the task reads.
    assert set(payload["backfill"]) <= set(statuses.SUMMARY_FIELDS)
    assert "progress" in payload["backfill"] and "batch_export" not in payload["backfill"]


def test_trigger_logs_the_backfill_status_line_only_when_it_changes(
    make_emulator: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A wait of hours polls hundreds of times: its log shows each status line once."""
    emu = make_emulator(backfill_create_delay=0.0, backfill_starting_seconds=1.5, run_seconds=0.6)
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=2)
    from airflow_provider_posthog_bx.hooks import PostHogHook

    backfill_id = PostHogHook().create_backfill(export["id"], start.isoformat(), end.isoformat())
    trigger = BatchExportBackfillTrigger(
        posthog_conn_id="posthog_default",
        project_id=emu.project_id,
        batch_export_id=export["id"],
        backfill_id=backfill_id,
        poll_interval=0.1,
        deadline=time.time() + 60,
        not_found_until=time.time() + 30,
    )
    caplog.set_level("INFO")
    emu.clear_requests()

    async def events() -> list[Any]:
        return [event async for event in trigger.run()]

    assert [e.payload["status"] for e in asyncio.run(events())] == ["final"]
    polls = emu.count("GET", r"/backfills/[^/]+/?$")
    assert polls >= 15  # Starting for 1.5 s, then two runs of 0.6 s, polled every 0.1 s
    log = task_log(capfd, caplog)
    # Airflow 3 logs through structlog to stdout (``... [logger] loc=...``), 2 through logging.
    line = re.compile(rf"Backfill {re.escape(backfill_id)}: (.+?)(\s+\[[\w.]+\].*)?$")
    shown = [m.group(1) for m in map(line.search, log.splitlines()) if m]
    assert shown[0] == "Starting, 0/2 runs finished (0%)"
    assert shown[-1] == "Completed, 2/2 runs finished (100%)"
    assert len(shown) == len(set(shown)) <= 5, shown  # each line once, however many polls


def test_trigger_reports_a_backfill_that_never_appears(make_emulator: Any) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    trigger = BatchExportBackfillTrigger(
        posthog_conn_id="posthog_default",
        project_id=emu.project_id,
        batch_export_id=export["id"],
        backfill_id="00000000-0000-4000-8000-000000000000",
        poll_interval=0.1,
        not_found_until=time.time() + 0.5,
    )

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    (event,) = asyncio.run(collect())
    assert event.payload["status"] == "error"
    assert event.payload["retryable"] is False
    assert "returned 404" in event.payload["message"]


@pytest.mark.parametrize("event", [None, {}, {"status": "surprise"}, {"status": "final"}, "x"])
def test_execute_complete_rejects_missing_or_unknown_events(event: Any) -> None:
    from airflow_provider_posthog_bx.operators import BatchExportBackfillOperator

    operator = BatchExportBackfillOperator(
        task_id="t", batch_export_id="e", start_at="2026-01-01", end_at="2026-01-02"
    )
    with pytest.raises(AirflowException, match="Backfill trigger sent"):
        operator.execute_complete(context={}, event=event)


@pytest.mark.parametrize("cancel_on_kill", [True, False])
def test_trigger_on_kill_cancels_only_when_asked(make_emulator: Any, cancel_on_kill: bool) -> None:
    """What Airflow 3.3 calls when a user marks the deferred task failed/success or clears it,
    here right after the create, while PostHog still answers 404 for the new backfill."""
    emu = make_emulator(run_seconds=5, backfill_create_delay=1.5)
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=5)
    from airflow_provider_posthog_bx.hooks import PostHogHook

    backfill_id = PostHogHook().create_backfill(export["id"], start.isoformat(), end.isoformat())
    trigger = BatchExportBackfillTrigger(
        posthog_conn_id="posthog_default",
        project_id=emu.project_id,
        batch_export_id=export["id"],
        backfill_id=backfill_id,
        poll_interval=1,
        cancel_on_kill=cancel_on_kill,
    )
    asyncio.run(trigger.on_kill())
    cancels = [r.status for r in emu.requests if r.path.rstrip("/").endswith("/cancel")]
    if cancel_on_kill:
        assert emu.get_backfill(backfill_id)["status"] == "Cancelled"
        assert cancels[0] == 404 and cancels[-1] == 200
    else:
        assert emu.get_backfill(backfill_id)["status"] in ("Starting", "Running")
        assert cancels == []
