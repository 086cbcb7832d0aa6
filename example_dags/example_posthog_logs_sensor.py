"""Start a backfill of yesterday without waiting for it, then watch PostHog's logs for the end.

The backfill task returns as soon as PostHog accepted the backfill. The sensor then waits in
the triggerer and echoes every PostHog log line of the export into its own task log, so the
whole story reads in Airflow; it succeeds on the first "finished successfully" line logged
after this DAG run started and fails on the first ERROR line.

Set the Airflow Variable ``posthog_batch_export_id`` (or ``AIRFLOW_VAR_POSTHOG_BATCH_EXPORT_ID``)
to a daily batch export and create a ``posthog_default`` connection.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, CronDataIntervalTimetable
except ImportError:  # Airflow 2.10
    from airflow import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_posthog_bx.operators import BatchExportBackfillOperator
from airflow_provider_posthog_bx.sensors import BatchExportLogsSensor

BATCH_EXPORT_ID = "{{ var.value.get('posthog_batch_export_id', 'set-posthog_batch_export_id') }}"

with DAG(
    dag_id="example_posthog_logs_sensor",
    # Each run covers the previous day, [midnight, midnight), also on Airflow 3.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["posthog", "example"],
) as dag:
    backfill = BatchExportBackfillOperator(
        task_id="start_backfill",
        batch_export_id=BATCH_EXPORT_ID,
        start_at="{{ data_interval_start }}",
        end_at="{{ data_interval_end }}",
        wait_for_completion=False,
    )
    wait_for_log = BatchExportLogsSensor(
        task_id="wait_for_finished_log",
        batch_export_id=BATCH_EXPORT_ID,
        search="finished successfully",
        # Lines logged before this DAG run started (an earlier export of the same day) don't
        # count.
        after="{{ dag_run.start_date }}",
        deferrable=True,
        poke_interval=2,
        timeout=timedelta(hours=2),
    )
    backfill >> wait_for_log
