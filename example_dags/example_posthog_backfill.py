"""Backfill a PostHog batch export over each day's data interval, waiting in the triggerer.

Scheduled runs re-export exactly their own day, [midnight, midnight) UTC: the
``CronDataIntervalTimetable`` gives them that interval on both Airflow lines (on Airflow 3 a
cron string such as ``"@daily"`` gives empty intervals). After a destination outage, trigger
the DAG by hand with ``{"start_at": "2026-11-20", "end_at": "2026-11-23"}`` (or fill in the
trigger form) to backfill that range instead; a manual run without them backfills the last
complete day. Set the Airflow Variable ``posthog_batch_export_id`` (or
``AIRFLOW_VAR_POSTHOG_BATCH_EXPORT_ID``) and a ``posthog_default`` connection.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, CronDataIntervalTimetable, Param
except ImportError:  # Airflow 2.10
    from airflow import DAG
    from airflow.models.param import Param
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_posthog_bx.operators import BatchExportBackfillOperator

with DAG(
    dag_id="example_posthog_backfill",
    # Each run covers the previous day, [midnight, midnight), also on Airflow 3.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    params={
        # No format="date": hourly exports also take datetimes, which a date picker refuses.
        "start_at": Param(
            None,
            type=["null", "string"],
            description="Start of the range to backfill, included: a day (YYYY-MM-DD, in the "
            "export's timezone) or an ISO datetime with an offset (2026-11-20T06:00:00Z). "
            "Leave empty to backfill this run's data interval.",
        ),
        "end_at": Param(
            None,
            type=["null", "string"],
            description="End of the range, excluded, in the past: a day (2026-11-23 ends at "
            "the midnight starting that day) or an ISO datetime with an offset. Leave empty "
            "to end with this run's data interval.",
        ),
    },
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
