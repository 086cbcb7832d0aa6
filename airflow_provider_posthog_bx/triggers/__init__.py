"""Triggers: async waits that run in Airflow's triggerer (plain-JSON kwargs only).

``BatchExportRunEventTrigger`` (for ``AssetWatcher``) is importable from here; it is loaded on
first use, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_posthog_bx.triggers.run_event import BatchExportRunEventTrigger


def __getattr__(name: str) -> Any:
    if name == "BatchExportRunEventTrigger":
        from airflow_provider_posthog_bx.triggers.run_event import BatchExportRunEventTrigger

        return BatchExportRunEventTrigger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BatchExportRunEventTrigger"]
