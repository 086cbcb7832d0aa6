"""Backfills on the Celery deployment when a process dies or a user steps in.

- A Celery worker SIGKILLed while a sync (non-deferrable) backfill task polls: the scheduler
  fails the task instance once its heartbeat is ``TASK_INSTANCE_HEARTBEAT_TIMEOUT`` s old, the
  retry (on a worker) resumes the same backfill from the task's record: one backfill in PostHog.
- The triggerer SIGKILLed while a deferred backfill waits, and a user marking a deferred
  backfill failed: ``tests/e2e/test_deferred_backfill.py``'s tests on this deployment, plus the
  check that their tasks ran on the Celery workers.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .. import test_deferred_backfill as deferred
from ..deployment import RUN_TIMEOUT, creates, past_hours, wait_for
from .deployment import TASK_INSTANCE_HEARTBEAT_TIMEOUT, CeleryDeployment

pytestmark = pytest.mark.e2e

SYNC = "e2e_celery_sync_backfill"
TASK = "backfill"
# 300 hourly runs at 1 s each of emulator time: in flight until the test ends it.
HOURS = 300
# Generous: the heartbeat timeout plus the scheduler's detection interval, its callback and a
# loaded machine.
DETECTION_TIMEOUT = TASK_INSTANCE_HEARTBEAT_TIMEOUT + 90

SYNC_DAG = textwrap.dedent(
    f"""\
    from datetime import timedelta

    import pendulum
    from airflow.sdk import DAG

    from airflow_provider_posthog_bx.operators import BatchExportBackfillOperator

    with DAG(
        dag_id="{SYNC}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        params={{"batch_export_id": None, "start_at": None, "end_at": None}},
        tags=["posthog", "e2e"],
    ):
        BatchExportBackfillOperator(
            task_id="{TASK}",
            batch_export_id="{{{{ params.batch_export_id }}}}",
            start_at="{{{{ params.start_at }}}}",
            end_at="{{{{ params.end_at }}}}",
            deferrable=False,  # the worker polls PostHog itself
            poll_interval=0.5,
            retries=2,
            retry_delay=timedelta(seconds=1),
        )
    """
)


@pytest.fixture(scope="module")
def sync_dag(deployment: CeleryDeployment) -> Iterator[None]:
    deployment.add_dag_file("e2e_celery_sync_backfill.py", SYNC_DAG, (SYNC,))
    yield


def test_a_retry_after_a_worker_sigkill_resumes_the_same_backfill(
    deployment: CeleryDeployment, sync_dag: None
) -> None:
    emu = deployment.emulator
    export = emu.create_batch_export(name="e2e celery worker kill")
    export_id = export["id"]
    start_at, end_at = past_hours(HOURS)
    run_id = deployment.trigger(
        SYNC, {"batch_export_id": export_id, "start_at": start_at, "end_at": end_at}
    )

    # Try 1 runs on a worker, created the backfill and polls it.
    ti = deployment.wait_task_state(SYNC, run_id, TASK, "running")
    wait_for(
        lambda: True if emu.backfill_creates(export_id) == 1 else None,
        "try 1 to create the backfill",
        RUN_TIMEOUT,
        details=lambda: deployment.run_logs(SYNC, run_id),
    )
    [backfill] = emu.backfills(export_id)
    polls = rf"/batch_exports/{export_id}/backfills/{backfill['id']}/?$"
    wait_for(
        lambda: True if emu.count("GET", polls) >= 2 else None,
        "try 1 to poll the backfill",
        RUN_TIMEOUT,
        details=lambda: deployment.run_logs(SYNC, run_id),
    )
    worker = deployment.worker_running(ti["id"])

    deployment.kill_worker(worker)  # Celery, its pool, the task's supervisor and process
    killed_at = time.monotonic()
    polls_at_kill = emu.count("GET", polls)
    deployment.start(worker)  # back to two workers while the scheduler notices

    # The scheduler fails try 1 for its stale heartbeat and queues the retry.
    def retried() -> bool | None:
        deployment.check_alive()
        current = deployment.task_instance(SYNC, run_id, TASK)
        if current["try_number"] == 1 and current["state"] == "running":
            return None
        assert current["state"] in ("up_for_retry", "queued", "scheduled", "running"), current
        return True

    wait_for(
        retried,
        f"the scheduler to fail try 1 of {SYNC}.{TASK} for its heartbeat",
        DETECTION_TIMEOUT,
        interval=0.2,
        details=lambda: f"{deployment.run_logs(SYNC, run_id)}\n{deployment.diagnostics()}",
    )
    deployment.timings["worker SIGKILL -> try 1 failed"] = time.monotonic() - killed_at
    events = deployment.api(
        "GET", "/eventLogs", params={"dag_id": SYNC, "run_id": run_id, "event": "heartbeat timeout"}
    )["event_logs"]
    assert [(e["task_id"], e["try_number"]) for e in events] == [(TASK, 1)], events

    # Try 2 reattaches to the same backfill and polls it; then it finishes.
    wait_for(
        lambda: True if emu.count("GET", polls) > polls_at_kill else None,
        "try 2 to poll the same backfill",
        RUN_TIMEOUT,
        details=lambda: deployment.run_logs(SYNC, run_id),
    )
    deployment.timings["worker SIGKILL -> try 2 polls"] = time.monotonic() - killed_at
    emu.advance(HOURS * 2)  # every run of the backfill finishes now

    assert deployment.wait_run(SYNC, run_id) == "success"
    assert emu.backfill_creates(export_id) == 1
    assert emu.count("POST", creates(export_id)) == 1
    [done] = emu.backfills(export_id)
    assert (done["id"], done["status"]) == (backfill["id"], "Completed")
    ti = deployment.task_instance(SYNC, run_id, TASK)
    assert (ti["state"], ti["try_number"]) == ("success", 2)
    assert deployment.xcom(SYNC, run_id, TASK) == backfill["id"]
    log = deployment.home / "logs" / f"dag_id={SYNC}" / f"run_id={run_id}" / f"task_id={TASK}"
    retry_log = (log / "attempt=2.log").read_text(errors="replace")
    assert f"Resuming backfill {backfill['id']}" in retry_log, retry_log
    deployment.assert_ran_on_celery(SYNC, run_id)
    deployment.wait_worker_ready(worker)  # the restarted worker, for the tests after this one


def _new_run(deployment: CeleryDeployment, before: set[str]) -> str:
    [run_id] = deployment.run_ids(deferred.BACKFILL) - before
    return run_id


def test_backfill_wait_survives_a_triggerer_sigkill_on_celery(
    deployment: CeleryDeployment, batch_export: dict[str, Any]
) -> None:
    before = deployment.run_ids(deferred.BACKFILL)

    deferred.test_backfill_wait_survives_a_triggerer_sigkill(deployment, batch_export)

    deployment.assert_ran_on_celery(deferred.BACKFILL, _new_run(deployment, before))


def test_marking_the_deferred_task_failed_cancels_the_backfill_on_celery(
    deployment: CeleryDeployment, batch_export: dict[str, Any]
) -> None:
    before = deployment.run_ids(deferred.BACKFILL)

    deferred.test_marking_the_deferred_task_failed_cancels_the_backfill(deployment, batch_export)

    deployment.assert_ran_on_celery(deferred.BACKFILL, _new_run(deployment, before))
