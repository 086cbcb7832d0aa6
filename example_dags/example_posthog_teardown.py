"""Delete a retired batch export (succeeds if it is already gone)."""

from __future__ import annotations

import pendulum

from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_posthog_bx.operators import DeleteOperator

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG
else:
    from airflow import DAG

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
