"""A reschedule-mode sensor in a real deployment: every poke is a new worker process."""

from __future__ import annotations

import textwrap
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from .deployment import Deployment

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_reschedule_run_sensor"
TASK = "wait"
DAG_SOURCE = textwrap.dedent(
    f"""\
    from datetime import timedelta

    import pendulum
    from airflow.sdk import DAG

    from airflow_provider_posthog_bx.sensors import BatchExportRunSensor

    with DAG(
        dag_id={DAG_ID!r},
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        params={{"batch_export_id": None, "start": None, "end": None}},
        tags=["posthog", "e2e"],
    ) as dag:
        BatchExportRunSensor(
            task_id={TASK!r},
            batch_export_id="{{{{ params.batch_export_id }}}}",
            data_interval_start="{{{{ params.start }}}}",
            data_interval_end="{{{{ params.end }}}}",
            mode="reschedule",
            # Long enough for the scheduler to handle each poke's exit before the next one: a
            # shorter interval trips Airflow 3.3.2's executor-event race (the task is marked
            # failed with "finished with state success, but the task instance is queued").
            poke_interval=6,
            timeout=timedelta(minutes=3),
            max_consecutive_errors=2,
        )
    """
)


def test_reschedule_mode_fails_after_max_consecutive_errors_across_pokes(
    deployment: Deployment,
) -> None:
    """0.1.0 counted errors per worker process, so a reschedule-mode sensor waited through
    any number of errors in a row (until its timeout)."""
    emu = deployment.emulator
    deployment.add_dag_file("e2e_reschedule_sensor.py", DAG_SOURCE, (DAG_ID,))
    export = emu.create_batch_export(name=f"e2e reschedule {uuid.uuid4().hex[:8]}")
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start, end = hour - timedelta(hours=2), hour - timedelta(hours=1)
    runs = rf"/batch_exports/{export['id']}/runs/?$"
    emu.add_fault("GET", runs, status=500, times=None)
    conf: dict[str, Any] = {
        "batch_export_id": export["id"],
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
    run_id = deployment.trigger(DAG_ID, conf)
    assert deployment.wait_run(DAG_ID, run_id) == "failed"
    # Two errors waited through (two reschedules), the third in a row fails the task.
    assert emu.count("GET", runs) == 3
