"""Sensors: wait for a batch export's log line or for its run of a data interval."""

from __future__ import annotations

from airflow_provider_posthog_bx.sensors.logs import BatchExportLogsSensor
from airflow_provider_posthog_bx.sensors.run import BatchExportRunSensor

__all__ = ["BatchExportLogsSensor", "BatchExportRunSensor"]
