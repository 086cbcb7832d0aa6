"""Each hour, wait for PostHog's export of that hour to complete, then use the exported data.

The sensor waits for the batch export's run of exactly this DAG run's data interval (PostHog
starts an hourly export a few minutes after the hour) and fails with PostHog's error if that
run fails. The schedule must produce the same intervals as the export: a
``CronDataIntervalTimetable`` does on both Airflow lines (on Airflow 3 a plain cron string
gives empty data intervals).

Set the Airflow Variable ``posthog_batch_export_id`` (or ``AIRFLOW_VAR_POSTHOG_BATCH_EXPORT_ID``)
to an hourly batch export and create a ``posthog_default`` connection.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, CronDataIntervalTimetable, task
except ImportError:  # Airflow 2.10
    from airflow import DAG
    from airflow.decorators import task
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_posthog_bx.sensors import BatchExportRunSensor

BATCH_EXPORT_ID = "{{ var.value.get('posthog_batch_export_id', 'set-posthog_batch_export_id') }}"

with DAG(
    dag_id="example_posthog_run_sensor",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["posthog", "example"],
) as dag:
    export_done = BatchExportRunSensor(
        task_id="wait_for_posthog_export",
        batch_export_id=BATCH_EXPORT_ID,
        # data_interval_start/end default to this DAG run's own interval.
        deferrable=True,
        poke_interval=60,
        timeout=timedelta(hours=3),
    )

    @task
    def load_exported_hour(run: dict[str, Any]) -> int:
        """Placeholder for the real work on the exported files/table."""
        print(
            f"PostHog exported {run['records_completed']} records for "
            f"{run['data_interval_start']} - {run['data_interval_end']}"
        )
        return int(run["records_completed"] or 0)

    load_exported_hour(export_done.output)
