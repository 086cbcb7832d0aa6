"""The sensors' example DAGs: parse offline on both lines and run for real against the emulator."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from .conftest import run_dag_file

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
LOGS_EXAMPLE = EXAMPLES / "example_posthog_logs_sensor.py"
RUN_EXAMPLE = EXAMPLES / "example_posthog_run_sensor.py"


def test_examples_parse_without_errors_or_requests(
    airflow_db, posthog_emulator_default, posthog_connection, tmp_path
):
    from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS

    for example in (LOGS_EXAMPLE, RUN_EXAMPLE):
        shutil.copy(example, tmp_path / example.name)
    if AIRFLOW_V_3_0_PLUS:
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(tmp_path))
    else:
        from airflow.models.dagbag import DagBag

        bag = DagBag(dag_folder=str(tmp_path), include_examples=False)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"example_posthog_logs_sensor", "example_posthog_run_sensor"}
    assert posthog_emulator_default.requests == []


def dag_run_interval(result):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=result.dag_id, run_id=result.run_id).one()
        return run.data_interval_start, run.data_interval_end


def test_logs_sensor_example_backfills_then_reads_the_finish_line(
    airflow_db, posthog_emulator_default, posthog_connection, monkeypatch, task_output
):
    export = posthog_emulator_default.create_batch_export(name="daily", interval="day")["id"]
    monkeypatch.setenv("AIRFLOW_VAR_POSTHOG_BATCH_EXPORT_ID", export)
    # A finish line from before this DAG run started does not count.
    posthog_emulator_default.add_log(
        export,
        "Batch export for range earlier finished successfully: 1 records exported.",
        timestamp=posthog_emulator_default.now() - timedelta(hours=2),
    )
    result = run_dag_file(LOGS_EXAMPLE)
    out = task_output()
    assert result.ti_states == {"start_backfill": "success", "wait_for_finished_log": "success"}
    start, end = dag_run_interval(result)
    entry = result.xcom("wait_for_finished_log")
    assert entry["message"] == (
        f"Batch export for range {start.isoformat()} - {end.isoformat()} finished successfully: "
        "100 records exported."
    )
    assert f"PostHog {entry['timestamp']} INFO: {entry['message']}" in out
    starting = posthog_emulator_default.logs(export)[1]
    assert starting["message"].endswith("starting.")
    assert f"PostHog {starting['timestamp']} INFO: {starting['message']}" in out


def test_run_sensor_example_waits_for_its_own_interval(
    airflow_db, posthog_emulator_default, posthog_connection, monkeypatch
):
    export = posthog_emulator_default.create_batch_export(name="hourly", interval="hour")["id"]
    monkeypatch.setenv("AIRFLOW_VAR_POSTHOG_BATCH_EXPORT_ID", export)
    hour = posthog_emulator_default.now().replace(minute=0, second=0, microsecond=0)
    for back in range(-1, 4):  # the run's interval depends on the clock; cover the candidates
        start = hour - timedelta(hours=back + 1)
        posthog_emulator_default.add_run(
            export, start, start + timedelta(hours=1), records_completed=10 + back
        )
    result = run_dag_file(RUN_EXAMPLE)
    assert result.ti_states == {
        "wait_for_posthog_export": "success",
        "load_exported_hour": "success",
    }
    start, end = dag_run_interval(result)
    run = result.xcom("wait_for_posthog_export")
    assert (run["data_interval_start"], run["data_interval_end"]) == (
        start.isoformat().replace("+00:00", "Z"),
        end.isoformat().replace("+00:00", "Z"),
    )
    assert result.xcom("load_exported_hour") == run["records_completed"]
