"""Backfill a PostHog batch export over each day's data interval, waiting in the triggerer.

Scheduled runs re-export exactly their own day. After a destination outage, trigger the DAG by
hand with ``{"start_at": "2026-11-20", "end_at": "2026-11-23"}`` as its conf to backfill that
range instead (manual runs on Airflow 3 have an empty data interval). Set the Airflow Variable
``posthog_batch_export_id`` (or ``AIRFLOW_VAR_POSTHOG_BATCH_EXPORT_ID``) and a
``posthog_default`` connection.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10
    from airflow import DAG

from airflow_provider_posthog_bx.operators import BatchExportBackfillOperator

with DAG(
    dag_id="example_posthog_backfill",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    params={"start_at": None, "end_at": None},
    tags=["posthog", "example"],
) as dag:
    BatchExportBackfillOperator(
        task_id="backfill_data_interval",
        batch_export_id="{{ var.value.posthog_batch_export_id }}",
        start_at="{{ params.start_at or data_interval_start }}",
        end_at="{{ params.end_at or data_interval_end }}",
        deferrable=True,
        poll_interval=2,
        timeout=timedelta(hours=6),
    )
