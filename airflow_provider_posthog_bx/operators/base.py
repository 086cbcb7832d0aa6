"""What every task of this provider shares: its connection, project, export and link."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_posthog_bx.links.batch_export import batch_export_url, push_batch_export_url

if TYPE_CHECKING:
    from airflow_provider_posthog_bx.hooks.posthog import PostHogHook


class BatchExportTaskMixin:
    """Gives a task ``hook`` and ``push_link``; needs ``posthog_conn_id``, ``project_id`` and
    ``batch_export_id`` attributes. The hook is imported lazily to keep DAG parsing cheap."""

    posthog_conn_id: str
    project_id: int | str | None
    batch_export_id: str

    @cached_property
    def hook(self) -> PostHogHook:
        from airflow_provider_posthog_bx.hooks.posthog import PostHogHook

        return PostHogHook(self.posthog_conn_id, self.project_id)

    def push_link(self, context: Any) -> str:
        """Push the export's PostHog URL to XCom (no API call) and return it."""
        url = batch_export_url(
            self.hook.settings.base_url, self.hook.project(), self.batch_export_id
        )
        push_batch_export_url(context, url)
        return url
