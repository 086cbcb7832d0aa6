"""Delete a retired batch export (succeeds if it is already gone)."""

from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10
    from airflow import DAG

from airflow_provider_posthog_bx.operators import DeleteOperator

with DAG(
    dag_id="example_posthog_teardown",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["posthog", "example"],
) as dag:
    DeleteOperator(
        task_id="delete_retired_export",
        batch_export_id="{{ var.value.posthog_retired_batch_export_id }}",
        missing_ok=True,
    )
