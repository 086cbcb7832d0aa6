"""Scheduling on PostHog's exports: example_posthog_asset_watcher in a real deployment.

Its AssetWatcher (BatchExportRunEventTrigger in the triggerer) has watched the export
``conftest.watch_asset_export`` made since the deployment started, when one run was already
Completed. Here the emulator completes runs; each one fires the watcher once and the
downstream DAG runs once for it, also across a triggerer SIGKILL (the watch's place is kept in
Airflow 3.3's asset state store).

The deployment's scheduler makes no scheduled or asset-triggered runs (``use_job_schedule`` is
off for the other tests); this test pauses every other DAG, turns it on, and puts both back.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from .conftest import WATCHED_EXPORT
from .deployment import Deployment, wait_for

pytestmark = pytest.mark.e2e

WATCHER_DAG = "example_posthog_asset_watcher"
TASK = "transform_exported_interval"
SCHEDULE_KEY = "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"


def watched_export(deployment: Deployment) -> dict[str, Any]:
    """The export the deployment's DAG file watches (its id is in the components' env)."""
    export = deployment.emulator.get_batch_export(deployment.env["POSTHOG_BATCH_EXPORT_ID"])
    assert export["name"] == WATCHED_EXPORT
    return export


@pytest.fixture
def scheduling(deployment: Deployment) -> Iterator[None]:
    """Asset-triggered runs on, for the watcher's DAG only."""
    dags = deployment.api("GET", "/dags", params={"limit": 100})["dags"]
    others = [d["dag_id"] for d in dags if d["dag_id"] != WATCHER_DAG and not d["is_paused"]]
    for dag_id in others:
        deployment.api("PATCH", f"/dags/{dag_id}", json={"is_paused": True})
    deployment.kill("scheduler")
    deployment.env[SCHEDULE_KEY] = "True"
    deployment.start("scheduler")
    try:
        yield
    finally:
        deployment.kill("scheduler")
        deployment.env[SCHEDULE_KEY] = "False"
        deployment.start("scheduler")
        for dag_id in others:
            deployment.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})


def dag_runs(deployment: Deployment) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = deployment.api(
        "GET", f"/dags/{WATCHER_DAG}/dagRuns", params={"order_by": "run_after"}
    )["dag_runs"]
    return runs


def test_each_completed_run_schedules_the_downstream_dag_once(
    deployment: Deployment, scheduling: None
) -> None:
    emu = deployment.emulator
    export = watched_export(deployment)
    assert os.environ.get("POSTHOG_BATCH_EXPORT_ID") is None  # only the deployment has it
    runs_path = rf"/batch_exports/{re.escape(export['id'])}/runs/?$"
    wait_for(
        lambda: True if emu.count("GET", runs_path) >= 3 else None,
        "the asset watcher to poll the export's runs",
        120,
        details=deployment.diagnostics,
    )
    # The run that was Completed before the watcher started never fires.
    time.sleep(5)
    assert dag_runs(deployment) == []

    hour = emu.now().replace(minute=0, second=0, microsecond=0)
    first = emu.add_run(
        export["id"], hour - timedelta(hours=2), hour - timedelta(hours=1), running_for=3
    )
    assert first["status"] == "Running"
    [run] = wait_for(lambda: dag_runs(deployment) or None, "a run of the downstream DAG", 120)
    assert run["run_type"] == "asset_triggered"
    assert deployment.wait_run(WATCHER_DAG, run["dag_run_id"]) == "success"
    assert deployment.xcom(WATCHER_DAG, run["dag_run_id"], TASK) == [first["id"]]

    # The triggerer dies; a run completes while no watcher runs; a new triggerer takes over.
    deployment.kill("triggerer")
    second = emu.add_run(export["id"], hour - timedelta(hours=1), hour, running_for=1)
    polls_at_kill = emu.count("GET", runs_path)
    deployment.start("triggerer")
    wait_for(
        lambda: True if emu.count("GET", runs_path) > polls_at_kill else None,
        "the new triggerer to restart the watcher",
        120,
        details=deployment.diagnostics,
    )
    later = wait_for(
        lambda: ((found := dag_runs(deployment))[1:] and found) or None,
        "the downstream DAG's run for the run that completed while the triggerer was down",
        120,
    )
    assert deployment.wait_run(WATCHER_DAG, later[1]["dag_run_id"]) == "success"
    assert deployment.xcom(WATCHER_DAG, later[1]["dag_run_id"], TASK) == [second["id"]]
    # More polls of the restarted watcher: neither run fires again.
    polls = emu.count("GET", runs_path)
    wait_for(
        lambda: True if emu.count("GET", runs_path) >= polls + 5 else None,
        "five more polls",
        60,
    )
    time.sleep(3)  # the scheduler's loop, had an event been sent
    assert len(dag_runs(deployment)) == 2
