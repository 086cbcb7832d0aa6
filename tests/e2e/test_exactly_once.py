"""Exactly one backfill per try of a task instance's work, in a real deployment: a retry
resumes the backfill an earlier try recorded (``durable=True``), a user's clear starts anew.

The backfill example DAG has a 5-minute ``retry_delay``, so the retry cases use DAGs of their
own (``DAG_SOURCE``), written into the deployment's test DAG bundle (``add_dag_file``). A try
is made to fail after its backfill completed with one 500 on the runs listing, which the
operator reads (the failed-runs check) once the backfill is Completed; PostHog's answer is
then "Completed", so only the record tells the retry that the range is exported already.
"""

from __future__ import annotations

import re
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .deployment import Deployment, creates, past_hours, start_deferred_backfill

pytestmark = pytest.mark.e2e

BACKFILL = "example_posthog_backfill"
BACKFILL_TASK = "backfill_data_interval"
# 300 hourly runs at 1 s each of emulator time: in flight until the test ends it.
HOURS = 300


def runs_of(export_id: str) -> str:
    """The runs listing of this test's export only (other exports are polled meanwhile, e.g. by
    the asset watcher example)."""
    return rf"/batch_exports/{re.escape(export_id)}/runs/?$"


# How Airflow 3.3.2 records a try that failed and was retried (its task instance history).
RETRIED = ("failed", "up_for_retry")

RETRY_SYNC = "e2e_exactly_once_retry_sync"
RETRY_DEFERRABLE = "e2e_exactly_once_retry_deferrable"
NO_RETRIES = "e2e_exactly_once_no_retries"
TASK = "backfill"
# Set to False to see the retry tests fail (a second backfill of the range).
DURABLE = True

DAG_SOURCE = textwrap.dedent(
    """\
    from datetime import timedelta

    import pendulum
    from airflow.sdk import DAG

    from airflow_provider_posthog_bx.operators import BatchExportBackfillOperator

    PARAMS = {{"batch_export_id": None, "start_at": None, "end_at": None}}


    def backfill_dag(dag_id, **task_kwargs):
        with DAG(
            dag_id=dag_id,
            schedule=None,
            start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
            params=PARAMS,
            tags=["posthog", "e2e"],
        ) as dag:
            BatchExportBackfillOperator(
                task_id="{task}",
                batch_export_id="{{{{ params.batch_export_id }}}}",
                start_at="{{{{ params.start_at }}}}",
                end_at="{{{{ params.end_at }}}}",
                durable={durable},
                retry_delay=timedelta(seconds=1),
                **task_kwargs,
            )
        return dag


    retry_sync = backfill_dag(
        "{retry_sync}", deferrable=False, poll_interval=0.5, retries=1
    )
    # Two retries: the quick-resume race (apache/airflow#67287) may cost a try of its own.
    retry_deferrable = backfill_dag(
        "{retry_deferrable}", deferrable=True, poll_interval=1, retries=2
    )
    no_retries = backfill_dag(
        "{no_retries}", deferrable=False, poll_interval=0.5, retries=0
    )
    """
).format(
    task=TASK,
    durable=DURABLE,
    retry_sync=RETRY_SYNC,
    retry_deferrable=RETRY_DEFERRABLE,
    no_retries=NO_RETRIES,
)


@pytest.fixture(scope="module")
def retry_dags(deployment: Deployment) -> Iterator[None]:
    deployment.add_dag_file(
        "e2e_exactly_once.py", DAG_SOURCE, (RETRY_SYNC, RETRY_DEFERRABLE, NO_RETRIES)
    )
    yield


@pytest.fixture
def export(deployment: Deployment) -> dict[str, Any]:
    return deployment.emulator.create_batch_export(name=f"e2e once {uuid.uuid4().hex[:8]}")


def clear(deployment: Deployment, dag_id: str, run_id: str, task_id: str) -> None:
    """Clear one task instance the way the UI's Clear button does (Airflow 3.3.2)."""
    cleared = deployment.api(
        "POST",
        f"/dags/{dag_id}/clearTaskInstances",
        json={
            "dry_run": False,
            "task_ids": [task_id],
            "dag_run_id": run_id,
            "only_failed": False,
            "reset_dag_runs": True,
        },
    )
    assert [ti["task_id"] for ti in cleared["task_instances"]] == [task_id], cleared


def tries(deployment: Deployment, dag_id: str, run_id: str, task_id: str) -> list[str | None]:
    """The state of every try of a task instance, oldest first (the current one last)."""
    body = deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
    ordered = sorted(body["task_instances"], key=lambda ti: ti["try_number"])
    return [ti["state"] for ti in ordered]


def attempt_log(deployment: Deployment, dag_id: str, run_id: str, task_id: str, n: int) -> str:
    task_dir = deployment.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    path = task_dir / f"task_id={task_id}" / f"attempt={n}.log"
    return path.read_text(errors="replace") if path.exists() else f"(no {path})"


def test_a_users_clear_of_a_succeeded_backfill_exports_again(
    deployment: Deployment, batch_export: dict[str, Any]
) -> None:
    """Clearing the succeeded task (the UI's Clear) starts a second backfill of the range:
    the user asked for a re-export, and the retry record must not stand in the way."""
    emu = deployment.emulator
    export_id = batch_export["id"]
    first = start_deferred_backfill(deployment, BACKFILL, BACKFILL_TASK, export_id, HOURS)
    run_id = first.run_id
    emu.advance(HOURS * 2)  # every run of the backfill finishes now
    assert deployment.wait_run(BACKFILL, run_id) == "success"
    assert emu.count("POST", creates(export_id)) == 1
    assert deployment.xcom(BACKFILL, run_id, BACKFILL_TASK) == first.backfill_id

    clear(deployment, BACKFILL, run_id, BACKFILL_TASK)

    # The new try defers on a new backfill; finish it once the scheduler has settled the
    # deferral (see Deployment.wait_defer_exit_handled).
    ti = deployment.wait_task_state(BACKFILL, run_id, BACKFILL_TASK, "deferred")
    deployment.wait_defer_exit_handled(ti["id"])
    emu.advance(HOURS * 2)
    assert deployment.wait_run(BACKFILL, run_id) == "success"

    assert emu.count("POST", creates(export_id)) == 2
    second, older = emu.backfills(export_id)  # newest first
    assert older["id"] == first.backfill_id
    assert second["id"] != first.backfill_id
    assert (second["status"], older["status"]) == ("Completed", "Completed")
    assert (second["start_at"], second["end_at"]) == (older["start_at"], older["end_at"])
    assert deployment.xcom(BACKFILL, run_id, BACKFILL_TASK) == second["id"]
    assert deployment.xcom(BACKFILL, run_id, BACKFILL_TASK, "backfill_id") == second["id"]


def test_a_users_clear_ignores_the_record_of_a_failed_try(
    deployment: Deployment, retry_dags: None, export: dict[str, Any]
) -> None:
    """A try that fails after its backfill completed (no retries) keeps its record; a user's
    clear of it must still export again, not finish from the recorded backfill."""
    emu = deployment.emulator
    start_at, end_at = past_hours(2)
    emu.add_fault("GET", runs_of(export["id"]), status=500, times=1)
    run_id = deployment.trigger(
        NO_RETRIES, {"batch_export_id": export["id"], "start_at": start_at, "end_at": end_at}
    )
    assert deployment.wait_run(NO_RETRIES, run_id) == "failed"
    [first] = emu.backfills(export["id"])
    assert first["status"] == "Completed"
    assert emu.count("POST", creates(export["id"])) == 1

    clear(deployment, NO_RETRIES, run_id, TASK)

    assert deployment.wait_run(NO_RETRIES, run_id) == "success"
    assert emu.count("POST", creates(export["id"])) == 2
    second, _ = emu.backfills(export["id"])
    assert second["id"] != first["id"] and second["status"] == "Completed"
    assert deployment.xcom(NO_RETRIES, run_id, TASK) == second["id"]
    log = attempt_log(deployment, NO_RETRIES, run_id, TASK, 2)
    assert "earlier clear generation" in log, log


def test_a_retry_after_the_backfill_completed_does_not_export_again(
    deployment: Deployment, retry_dags: None, export: dict[str, Any]
) -> None:
    """Try 1 creates the backfill, waits for it (in the worker) and fails reading its runs;
    try 2 finishes from the same, Completed, backfill."""
    emu = deployment.emulator
    start_at, end_at = past_hours(2)
    fault = emu.add_fault("GET", runs_of(export["id"]), status=500, times=1)
    run_id = deployment.trigger(
        RETRY_SYNC, {"batch_export_id": export["id"], "start_at": start_at, "end_at": end_at}
    )
    assert deployment.wait_run(RETRY_SYNC, run_id) == "success"

    ti = deployment.task_instance(RETRY_SYNC, run_id, TASK)
    assert (ti["state"], ti["try_number"]) == ("success", 2)
    assert fault.hits == 1
    first_try, last_try = tries(deployment, RETRY_SYNC, run_id, TASK)
    assert first_try in RETRIED and last_try == "success"
    assert emu.count("POST", creates(export["id"])) == 1
    [backfill] = emu.backfills(export["id"])
    assert backfill["status"] == "Completed"
    assert deployment.xcom(RETRY_SYNC, run_id, TASK) == backfill["id"]
    log = attempt_log(deployment, RETRY_SYNC, run_id, TASK, 2)
    assert f"Resuming backfill {backfill['id']}" in log, log


def test_a_quickly_resumed_deferred_retry_does_not_export_again(
    deployment: Deployment, retry_dags: None, export: dict[str, Any]
) -> None:
    """The same in the triggerer, with a backfill that completes within seconds of the
    deferral: Airflow 3.3.2 may then fail the resumed try itself (apache/airflow#67287) before
    or instead of the injected 500. Whichever tries fail, the range is backfilled once."""
    emu = deployment.emulator
    start_at, end_at = past_hours(2)  # ~3 s in the emulator: create delay, Starting, 2 runs
    fault = emu.add_fault("GET", runs_of(export["id"]), status=500, times=1)
    run_id = deployment.trigger(
        RETRY_DEFERRABLE,
        {"batch_export_id": export["id"], "start_at": start_at, "end_at": end_at},
    )
    assert deployment.wait_run(RETRY_DEFERRABLE, run_id) == "success"

    ti = deployment.task_instance(RETRY_DEFERRABLE, run_id, TASK)
    assert ti["state"] == "success" and ti["try_number"] >= 2, ti
    assert fault.hits == 1
    states = tries(deployment, RETRY_DEFERRABLE, run_id, TASK)
    assert all(s in RETRIED for s in states[:-1]) and states[-1] == "success", states
    assert emu.count("POST", creates(export["id"])) == 1
    [backfill] = emu.backfills(export["id"])
    assert backfill["status"] == "Completed"
    assert deployment.xcom(RETRY_DEFERRABLE, run_id, TASK) == backfill["id"]
