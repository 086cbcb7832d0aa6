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
    }
    assert expected <= set(bag.dag_ids)
    maintenance = bag.get_dag("example_posthog_maintenance")
    unpause = maintenance.get_task("unpause_export")
    # Unpausing runs even when the maintenance work fails.
    assert unpause.is_teardown
