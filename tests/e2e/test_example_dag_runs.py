"""The example DAGs, run by the scheduler of a real Airflow 3 deployment against the emulator."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .deployment import (
    EXAMPLE_DAG_IDS,
    Deployment,
    creates,
    start_deferred_backfill,
    trigger_logs,
)

pytestmark = pytest.mark.e2e

BACKFILL = "example_posthog_backfill"
BACKFILL_TASK = "backfill_data_interval"
MAINTENANCE = "example_posthog_maintenance"
TEARDOWN = "example_posthog_teardown"
# 300 hourly runs at 1 s each of emulator time: in flight until the test ends it.
HOURS = 300


def test_example_dags_parse_without_errors(deployment: Deployment) -> None:
    """The deployment's own dag-processor parses every example DAG file cleanly."""
    errors = deployment.api("GET", "/importErrors")
    assert errors["import_errors"] == [], errors
    dags = {d["dag_id"]: d for d in deployment.api("GET", "/dags", params={"limit": 100})["dags"]}
    for dag_id in EXAMPLE_DAG_IDS:
        assert dags[dag_id]["is_paused"] is False


def test_backfill_example_defers_and_succeeds(
    deployment: Deployment, batch_export: dict[str, Any]
) -> None:
    """The backfill waits in the triggerer and the task succeeds with the backfill's id.

    The backfill is held in flight until the scheduler has settled the deferral, then finished
    by moving the emulator's clock: a backfill that ends within seconds of the deferral trips
    an Airflow 3.3.2 race (see ``Deployment.wait_defer_exit_handled``).
    """
    emu = deployment.emulator
    waiting = start_deferred_backfill(
        deployment, BACKFILL, BACKFILL_TASK, batch_export["id"], HOURS
    )
    run_id = waiting.run_id
    # The api-server resolves the provider's extra link while the task waits.
    links = deployment.api(
        "GET", f"/dags/{BACKFILL}/dagRuns/{run_id}/taskInstances/{BACKFILL_TASK}/links"
    )
    export_url = f"{emu.url}/project/{emu.project_id}/pipeline/batch-exports/{batch_export['id']}"
    assert links["extra_links"] == {"PostHog batch export": export_url}

    emu.advance(HOURS * 2)  # every run of the backfill finishes now

    assert deployment.wait_run(BACKFILL, run_id) == "success"
    [backfill] = emu.backfills(batch_export["id"])
    assert (backfill["id"], backfill["status"]) == (waiting.backfill_id, "Completed")
    assert (backfill["start_at"], backfill["end_at"]) == (
        waiting.start_at.replace("+00:00", "Z"),
        waiting.end_at.replace("+00:00", "Z"),
    )
    assert emu.count("POST", creates(batch_export["id"])) == 1
    assert deployment.xcom(BACKFILL, run_id, BACKFILL_TASK, "backfill_id") == backfill["id"]
    assert deployment.xcom(BACKFILL, run_id, BACKFILL_TASK) == backfill["id"]
    assert deployment.xcom(BACKFILL, run_id, BACKFILL_TASK, "batch_export_url") == export_url
    assert deployment.task_instance(BACKFILL, run_id, BACKFILL_TASK)["try_number"] == 1
    assert trigger_logs(deployment, BACKFILL, run_id, BACKFILL_TASK)


def test_maintenance_example_unpauses_as_teardown(
    deployment: Deployment, batch_export: dict[str, Any]
) -> None:
    """Both outcomes at once: the unpause teardown runs whether the maintenance work succeeds
    or fails, and a failed maintenance still fails the DAG run."""
    emu = deployment.emulator
    export_id = batch_export["id"]

    ok_run = deployment.trigger(MAINTENANCE, {"fail_maintenance": False})
    failing_run = deployment.trigger(MAINTENANCE, {"fail_maintenance": True})

    assert deployment.wait_run(MAINTENANCE, ok_run) == "success"
    assert deployment.wait_run(MAINTENANCE, failing_run) == "failed"
    assert deployment.task_states(MAINTENANCE, ok_run) == {
        "pause_export": "success",
        "warehouse_maintenance": "success",
        "unpause_export": "success",
    }
    assert deployment.task_states(MAINTENANCE, failing_run) == {
        "pause_export": "success",
        "warehouse_maintenance": "failed",
        "unpause_export": "success",
    }
    for run_id in (ok_run, failing_run):
        assert deployment.xcom(MAINTENANCE, run_id, "pause_export") is True
        assert deployment.xcom(MAINTENANCE, run_id, "unpause_export") is False
    assert emu.get_batch_export(export_id)["paused"] is False
    # Each run paused before it unpaused; a run may find the export already paused by the
    # other run (then it sends nothing), so count at least one of each, at most two.
    pauses = emu.count("POST", rf"/batch_exports/{export_id}/pause/?$")
    unpauses = [
        r
        for r in emu.requests
        if r.method == "POST" and r.path.rstrip("/").endswith(f"{export_id}/unpause")
    ]
    assert 1 <= pauses <= 2
    assert 1 <= len(unpauses) <= 2
    # backfill=True asks PostHog to export the paused window.
    assert all((r.body or {}).get("backfill") is True for r in unpauses), unpauses


def test_teardown_example_deletes_the_export(deployment: Deployment) -> None:
    emu = deployment.emulator
    export = emu.create_batch_export(name="retired export")
    deployment.set_variable("posthog_retired_batch_export_id", export["id"])

    run_id = deployment.trigger(TEARDOWN)

    assert deployment.wait_run(TEARDOWN, run_id) == "success"
    assert deployment.xcom(TEARDOWN, run_id, "delete_retired_export") is True
    assert emu.count("DELETE", rf"/batch_exports/{export['id']}/?$") == 1
    response = httpx.get(
        f"{emu.url}/api/projects/{emu.project_id}/batch_exports/{export['id']}/",
        headers={"Authorization": f"Bearer {emu.api_key}"},
    )
    assert response.status_code == 404, response.text


def test_scheduled_runs_of_the_examples_succeed(
    deployment: Deployment, batch_export: dict[str, Any]
) -> None:
    """The scheduled examples (backfill, run sensor, logs sensor) as scheduled runs, not manual
    ones with params: each run's data interval is its own hour or day (on Airflow 3 a cron
    string schedule would give empty intervals), and the backfill example re-exports exactly
    the previous day.

    The deployment's scheduler makes no scheduled runs (``use_job_schedule`` is off, so the
    other tests see only the runs they trigger); this test runs one that does, then puts the
    usual one back.
    """
    from datetime import datetime, timedelta, timezone

    from .deployment import wait_for

    emu = deployment.emulator
    export_id = batch_export["id"]
    # The run sensor example waits for PostHog's run of the latest complete hour: there is one,
    # also for the next hour, in case the hour turns before the scheduler makes the run.
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    for end in (hour, hour + timedelta(hours=1)):
        emu.add_run(export_id, end - timedelta(hours=1), end, records_completed=42)
    examples = (BACKFILL, "example_posthog_run_sensor", "example_posthog_logs_sensor")
    key = "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"
    deployment.kill("scheduler")
    deployment.env[key] = "True"
    deployment.start("scheduler")
    runs: dict[str, dict[str, Any]] = {}
    try:

        def scheduled(dag_id: str) -> dict[str, Any] | None:
            found = deployment.api(
                "GET", f"/dags/{dag_id}/dagRuns", params={"run_type": "scheduled"}
            )["dag_runs"]
            return found[0] if found else None

        # catchup=False: the scheduler makes each example's run of its latest complete interval.
        for dag_id in examples:
            runs[dag_id] = wait_for(
                lambda dag_id=dag_id: scheduled(dag_id), f"a scheduled run of {dag_id}", 180
            )
        ti = deployment.wait_task_state(
            BACKFILL, runs[BACKFILL]["dag_run_id"], BACKFILL_TASK, "deferred"
        )
        deployment.wait_defer_exit_handled(ti["id"])
        emu.advance(48 * 2)  # the day's 24 hourly runs finish now, logs included
        for dag_id in examples:
            state = deployment.wait_run(dag_id, runs[dag_id]["dag_run_id"])
            assert state == "success", (
                dag_id,
                deployment.run_logs(dag_id, runs[dag_id]["dag_run_id"]),
            )
    finally:
        deployment.kill("scheduler")
        deployment.env[key] = "False"
        deployment.start("scheduler")

    for dag_id in examples:
        start, end = runs[dag_id]["data_interval_start"], runs[dag_id]["data_interval_end"]
        assert start != end, dag_id
    run = runs[BACKFILL]
    start = run["data_interval_start"].replace("+00:00", "Z")
    end = run["data_interval_end"].replace("+00:00", "Z")
    assert end.endswith("T00:00:00Z")
    backfill_id = deployment.xcom(BACKFILL, run["dag_run_id"], BACKFILL_TASK)
    backfill = emu.get_backfill(backfill_id)
    assert (backfill["start_at"], backfill["end_at"], backfill["status"]) == (
        start,
        end,
        "Completed",
    )
    # The run sensor example found the run of its own hour.
    sensed = runs["example_posthog_run_sensor"]
    found = deployment.xcom(
        "example_posthog_run_sensor", sensed["dag_run_id"], "wait_for_posthog_export"
    )
    assert found["records_completed"] == 42
