"""The "PostHog batch export" button on this provider's tasks.

The URL is computed in the task (it knows the connection) and pushed to XCom before any wait,
so the link works while the task is deferred and after it fails; the link itself makes no API
call and reads no connection.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow_provider_posthog_bx._compat import BaseOperatorLink, XCom

XCOM_KEY = "batch_export_url"


def batch_export_url(base_url: str, project_id: int | str, batch_export_id: str) -> str:
    """PostHog's page for one batch export, e.g.
    ``https://us.posthog.com/project/1/pipeline/batch-exports/<id>``."""
    project = quote(str(project_id), safe="")
    export = quote(str(batch_export_id), safe="")
    return f"{base_url.rstrip('/')}/project/{project}/pipeline/batch-exports/{export}"


def push_batch_export_url(context: Any, url: str) -> None:
    """Record the export's URL in the running task's XCom for the link."""
    context["ti"].xcom_push(key=XCOM_KEY, value=url)


class BatchExportLink(BaseOperatorLink):
    """Opens the batch export in PostHog."""

    name = "PostHog batch export"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        url = XCom.get_value(ti_key=ti_key, key=XCOM_KEY)
        return url if isinstance(url, str) else ""
