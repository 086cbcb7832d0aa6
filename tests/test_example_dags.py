"""The example DAGs import with zero errors (no network, no connection needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"


def test_example_dags_import_cleanly(airflow_db: Any) -> None:
    from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(EXAMPLES))
    else:
        from airflow.models.dagbag import DagBag

        bag = DagBag(dag_folder=str(EXAMPLES), include_examples=False)
    assert bag.import_errors == {}
    expected = {
        "example_posthog_backfill",
        "example_posthog_maintenance",
        "example_posthog_teardown",
        "example_posthog_logs_sensor",
        "example_posthog_run_sensor",
        "example_posthog_asset_watcher",
    }
    assert expected <= set(bag.dag_ids)
    maintenance = bag.get_dag("example_posthog_maintenance")
    unpause = maintenance.get_task("unpause_export")
    # Unpausing runs even when the maintenance work fails.
    assert unpause.is_teardown


def _bag() -> Any:
    from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=str(EXAMPLES))
    from airflow.models.dagbag import DagBag

    return DagBag(dag_folder=str(EXAMPLES), include_examples=False)


def test_backfill_example_runs_cover_a_whole_day(airflow_db: Any) -> None:
    """A cron string gives empty data intervals on Airflow 3: every scheduled run would fail."""
    try:  # Airflow 3
        from airflow.sdk import CronDataIntervalTimetable
    except ImportError:  # Airflow 2.10
        from airflow.timetables.interval import CronDataIntervalTimetable

    dag = _bag().get_dag("example_posthog_backfill")
    # A run's data interval is [previous midnight, midnight) on both lines, scheduled or manual.
    assert isinstance(dag.timetable, CronDataIntervalTimetable), type(dag.timetable)
    expression = getattr(dag.timetable, "expression", None) or dag.timetable._expression
    assert expression == "0 0 * * *"


def test_example_params_are_described_in_the_trigger_form(airflow_db: Any) -> None:
    bag = _bag()
    params = {
        ("example_posthog_backfill", "start_at"): "YYYY-MM-DD",
        ("example_posthog_backfill", "end_at"): "ISO datetime",
        ("example_posthog_maintenance", "fail_maintenance"): "",
    }
    for (dag_id, name), hint in params.items():
        param = bag.get_dag(dag_id).params.get_param(name)
        assert param.description and hint in param.description, (dag_id, name)
        assert "type" in param.schema, (dag_id, name)
        # A date picker would refuse the datetimes hourly exports take.
        assert "format" not in param.schema, (dag_id, name)


def test_asset_watcher_example_watches_the_configured_export_the_same_at_every_parse(
    airflow_db: Any, monkeypatch: Any
) -> None:
    import importlib.util

    from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS
    from airflow_provider_posthog_bx.triggers import BatchExportRunEventTrigger

    monkeypatch.setenv("POSTHOG_BATCH_EXPORT_ID", "export-1")
    monkeypatch.setenv("POSTHOG_DESTINATION_URI", "s3://lake/posthog")

    def parse() -> Any:
        path = EXAMPLES / "example_posthog_asset_watcher.py"
        spec = importlib.util.spec_from_file_location("asset_watcher_example", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    first, second = parse(), parse()
    assert first.exported_events.uri == "s3://lake/posthog"
    if not AIRFLOW_V_3_0_PLUS:
        assert first.watchers == []  # Airflow 2: no event-driven scheduling
        return
    (watcher,) = first.exported_events.watchers
    assert isinstance(watcher.trigger, BatchExportRunEventTrigger)
    assert watcher.trigger.batch_export_id == "export-1"
    # A watcher is identified by its trigger's kwargs: every parse must give the same ones.
    assert watcher.trigger.serialize() == second.exported_events.watchers[0].trigger.serialize()
