"""Pause a batch export for warehouse maintenance and unpause it afterwards, whatever happens.

The unpause is a teardown task: it runs even when the maintenance work fails, and the DAG run
still fails in that case. ``backfill=True`` asks PostHog to export the paused window afterwards.
"""

from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.10
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_posthog_bx.operators import PauseOperator, UnpauseOperator

with DAG(
    dag_id="example_posthog_maintenance",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "fail_maintenance": Param(
            False,
            type="boolean",
            description="Make the maintenance task fail, to see the export unpaused anyway.",
        )
    },
    tags=["posthog", "example"],
) as dag:
    pause = PauseOperator(
        task_id="pause_export", batch_export_id="{{ var.value.posthog_batch_export_id }}"
    )

    @task
    def warehouse_maintenance(params: dict | None = None) -> None:
        """Placeholder for the real work (vacuum, schema migration, ...)."""
        if params and params.get("fail_maintenance"):
            raise RuntimeError("maintenance failed")

    unpause = UnpauseOperator(
        task_id="unpause_export",
        batch_export_id="{{ var.value.posthog_batch_export_id }}",
        backfill=True,
    )

    pause >> warehouse_maintenance() >> unpause.as_teardown(setups=pause)
