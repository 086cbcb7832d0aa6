"""Extra links shown on this provider's tasks."""

from __future__ import annotations

from airflow_provider_posthog_bx.links.batch_export import BatchExportLink

__all__ = ["BatchExportLink"]
