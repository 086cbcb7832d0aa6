"""Run a dbt-like transformation each time PostHog finishes exporting an interval.

PostHog runs a batch export on its own schedule. Here the warehouse table it writes is an
Airflow asset, and an ``AssetWatcher`` in the triggerer polls the export's runs: each run that
reaches ``Completed`` is one asset event, and the downstream DAG runs once for it. No sensor
holds a worker slot, and no DAG has to guess when PostHog is done.

The watcher fires only for runs that complete after it started, and once per run. On Airflow
3.3+ it keeps its place in the asset state store, so a restarted triggerer neither fires a run
twice nor misses the runs that completed while it was down (3.0 to 3.2: never twice, but runs
that completed while no watcher ran are missed). Airflow 2 has no event-driven scheduling: the
DAG is scheduled on the dataset, and a ``BatchExportRunSensor``/``BatchExportBackfillOperator``
with the dataset in its ``outlets`` produces the events.

Configuration is read from the environment when the DAG file is parsed (a watcher's arguments
must be the same at every parse; no Airflow Variable or connection is read at parse time):

- ``POSTHOG_BATCH_EXPORT_ID``: the batch export to watch (no watcher without it).
- ``POSTHOG_DESTINATION_URI``: the asset, e.g. ``snowflake://myorg-acct/RAW/POSTHOG/events``
  (``airflow_provider_posthog_bx.assets.destination_uri(export)`` computes it from the export
  where PostHog's API exposes it).
- ``POSTHOG_WATCH_POLL_INTERVAL``: seconds between two polls (default 60; one request each).

A ``posthog_default`` connection is needed in the triggerer.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Asset, AssetWatcher, task
except ImportError:  # Airflow 2.10: datasets, no watchers
    from airflow import DAG
    from airflow.datasets import Dataset as Asset
    from airflow.decorators import task

    AssetWatcher = None

from airflow_provider_posthog_bx.triggers import BatchExportRunEventTrigger

BATCH_EXPORT_ID = os.environ.get("POSTHOG_BATCH_EXPORT_ID")
DESTINATION_URI = os.environ.get("POSTHOG_DESTINATION_URI", "s3://posthog-exports/events")
POLL_INTERVAL = float(os.environ.get("POSTHOG_WATCH_POLL_INTERVAL", "60"))
EVENTS_KEY = "triggering_asset_events" if AssetWatcher is not None else "triggering_dataset_events"

watchers = []
if BATCH_EXPORT_ID and AssetWatcher is not None:
    watchers.append(
        AssetWatcher(
            name="posthog_export_runs",
            trigger=BatchExportRunEventTrigger(
                batch_export_id=BATCH_EXPORT_ID, poll_interval=POLL_INTERVAL
            ),
        )
    )
exported_events = (
    Asset(name="posthog_exported_events", uri=DESTINATION_URI, watchers=watchers)
    if AssetWatcher is not None
    else Asset(DESTINATION_URI)
)

with DAG(
    dag_id="example_posthog_asset_watcher",
    schedule=[exported_events],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["posthog", "example"],
) as dag:

    @task
    def transform_exported_interval(**context: Any) -> list[str]:
        """Placeholder for the dbt run over what PostHog just exported."""
        runs = []
        for event in context[EVENTS_KEY][exported_events]:
            run = event.extra.get("payload") or event.extra  # the watcher's, or a task's extra
            print(
                f"PostHog run {run.get('id') or run.get('run_id')} exported "
                f"{run.get('records_completed')} records for "
                f"{run.get('data_interval_start')} - {run.get('data_interval_end')}"
            )
            runs.append(str(run.get("id") or run.get("run_id")))
        return runs

    transform_exported_interval()
