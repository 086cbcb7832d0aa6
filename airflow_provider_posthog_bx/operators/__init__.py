"""Operators: backfill, pause, unpause and delete a PostHog batch export."""

from __future__ import annotations

from airflow_provider_posthog_bx.operators.backfill import BatchExportBackfillOperator
from airflow_provider_posthog_bx.operators.delete import DeleteOperator
from airflow_provider_posthog_bx.operators.pause import PauseOperator, UnpauseOperator

__all__ = ["BatchExportBackfillOperator", "DeleteOperator", "PauseOperator", "UnpauseOperator"]
