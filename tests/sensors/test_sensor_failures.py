"""A sensor that sees PostHog report a failure fails at once with PostHog's message.

Both sensors, in poke and deferrable mode, in one real DAG run (dag.test) against the emulator
over HTTP, next to the same sensors succeeding (the control). The compatibility set runs this on
every Airflow line: a line where the failure is lost (the task keeps waiting until its timeout,
or fails without PostHog's message) fails here.
"""

from __future__ import annotations

from datetime import timedelta

from dag_runner import run_dag
from support import logs_path, runs_path

NAMES = ("run_poke", "run_defer", "logs_poke", "logs_defer")
CONTROLS = ("run_ok_defer", "logs_ok_poke")


def test_sensors_fail_at_once_with_posthogs_message(
    airflow_db, posthog_emulator_default, posthog_connection, background, task_output
):
    emu = posthog_emulator_default
    ids = {name: emu.create_batch_export(name=name)["id"] for name in NAMES + CONTROLS}
    start = emu.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    end = start + timedelta(hours=1)
    after = (emu.now() - timedelta(minutes=1)).isoformat()

    # Poke mode sees the failure at its first read; the deferred sensors see it in the
    # trigger only (it appears after their first reads).
    emu.add_run(ids["run_poke"], start, end, status="Failed", latest_error="NoSuchBucket: poke")
    emu.add_log(ids["logs_poke"], "Poke: destination bucket gone", level="ERROR")
    background.after_requests(
        runs_path(ids["run_defer"]),
        2,
        lambda: emu.add_run(
            ids["run_defer"], start, end, status="Failed", latest_error="NoSuchBucket: deferred"
        ),
    )
    background.after_requests(
        logs_path(ids["logs_defer"]),
        2,
        lambda: emu.add_log(ids["logs_defer"], "Deferred: destination bucket gone", level="ERROR"),
    )
    background.after_requests(
        runs_path(ids["run_ok_defer"]), 2, lambda: emu.add_run(ids["run_ok_defer"], start, end)
    )
    emu.add_log(ids["logs_ok_poke"], "transient glitch", level="WARNING")
    emu.add_log(ids["logs_ok_poke"], "Batch export finished successfully")

    # A timeout long enough that a sensor that missed the failure would poke hundreds of times.
    result = run_dag(f"""
from airflow_provider_posthog_bx.sensors import BatchExportLogsSensor, BatchExportRunSensor
ids = {ids!r}
common = dict(poke_interval=0.2, timeout=120)
interval = dict(data_interval_start={start.isoformat()!r}, data_interval_end={end.isoformat()!r})
logs = dict(search="never logged", after={after!r})
BatchExportRunSensor(task_id="run_poke", batch_export_id=ids["run_poke"], **interval, **common)
BatchExportRunSensor(task_id="run_defer", batch_export_id=ids["run_defer"], deferrable=True,
                     **interval, **common)
BatchExportLogsSensor(task_id="logs_poke", batch_export_id=ids["logs_poke"], **logs, **common)
BatchExportLogsSensor(task_id="logs_defer", batch_export_id=ids["logs_defer"], deferrable=True,
                      **logs, **common)
BatchExportRunSensor(task_id="run_ok_defer", batch_export_id=ids["run_ok_defer"], deferrable=True,
                     **interval, **common)
BatchExportLogsSensor(task_id="logs_ok_poke", batch_export_id=ids["logs_ok_poke"],
                      search="FINISHED", after={after!r}, **common)
""")
    background.check()
    out = task_output()

    assert result.ti_states == {
        **dict.fromkeys(NAMES, "failed"),
        **dict.fromkeys(CONTROLS, "success"),
    }, result.ti_states
    assert result.xcom("run_ok_defer")["status"] == "Completed"
    assert result.xcom("logs_ok_poke")["message"] == "Batch export finished successfully"
    # Each failed with BatchExportJobFailed carrying PostHog's words, none with a timeout.
    failures = [line for line in out.splitlines() if "BatchExportJobFailed: " in line]
    expected = {
        "run_poke": f"{ids['run_poke']} for {format_interval(start, end)} ended Failed in "
        "PostHog: NoSuchBucket: poke",
        "run_defer": f"{ids['run_defer']} for {format_interval(start, end)} ended Failed in "
        "PostHog: NoSuchBucket: deferred",
        "logs_poke": f"Batch export {ids['logs_poke']} logged ERROR at ",
        "logs_defer": f"Batch export {ids['logs_defer']} logged ERROR at ",
    }
    for name, text in expected.items():
        assert any(text in line for line in failures), (name, failures)
    assert any(line.endswith(": Poke: destination bucket gone") for line in failures), failures
    assert any(line.endswith(": Deferred: destination bucket gone") for line in failures)
    assert "AirflowSensorTimeout" not in out
    assert "timed out" not in out
    # They stopped at the failure: one read in poke mode, a couple more for the deferred ones.
    assert emu.count("GET", runs_path(ids["run_poke"])) == 1
    assert emu.count("GET", logs_path(ids["logs_poke"])) == 1
    assert emu.count("GET", runs_path(ids["run_defer"])) <= 4
    assert emu.count("GET", logs_path(ids["logs_defer"])) <= 4


def format_interval(start, end) -> str:
    """How the run sensor names an interval in its failure: PostHog's own rendering."""
    return f"{start.strftime('%Y-%m-%dT%H:%M:%SZ')} - {end.strftime('%Y-%m-%dT%H:%M:%SZ')}"
