"""The provider metadata Airflow discovers through the ``apache_airflow_provider`` entry point.

This module must not import Airflow: the providers manager calls it while Airflow is starting.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_posthog_bx import __version__


def get_provider_info() -> dict[str, Any]:
    """Return the provider description in the shape of Airflow's ``provider_info.schema.json``."""
    return {
        "package-name": "airflow-provider-posthog-bx",
        "name": "PostHog Batch Exports",
        "description": (
            "Backfill, pause, delete and watch `PostHog <https://posthog.com/>`__ batch exports "
            "from Airflow."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "PostHog",
                "external-doc-url": "https://posthog.com/docs/cdp/batch-exports",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "PostHog",
                "python-modules": ["airflow_provider_posthog_bx.hooks.posthog"],
            }
        ],
        "operators": [
            {
                "integration-name": "PostHog",
                "python-modules": [
                    "airflow_provider_posthog_bx.operators.backfill",
                    "airflow_provider_posthog_bx.operators.pause",
                    "airflow_provider_posthog_bx.operators.delete",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "PostHog",
                "python-modules": [
                    "airflow_provider_posthog_bx.sensors.logs",
                    "airflow_provider_posthog_bx.sensors.run",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "PostHog",
                "python-modules": [
                    "airflow_provider_posthog_bx.triggers.backfill",
                    "airflow_provider_posthog_bx.triggers.logs",
                    "airflow_provider_posthog_bx.triggers.run",
                ],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_posthog_bx.hooks.posthog.PostHogHook",
                "connection-type": "posthog",
                # Airflow 3.2+ builds the connection form from these keys without importing the
                # hook; older Airflow ignores them and asks PostHogHook.get_ui_field_behaviour()
                # and get_connection_form_widgets() instead. Keep the two in step.
                "hook-name": "PostHog",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"host": "PostHog URL", "password": "Personal API key"},
                    "placeholders": {
                        "host": "https://us.posthog.com (US Cloud), https://eu.posthog.com "
                        "(EU Cloud) or your self-hosted URL",
                        "password": "phx_... with scopes batch_export:read and batch_export:write",
                        "extra": '{"project_id": 12345}',
                    },
                },
                "conn-fields": {
                    "project_id": {
                        "label": "Project ID",
                        "description": "Default PostHog project id; operators may override it.",
                        "schema": {"type": "string"},
                    }
                },
            }
        ],
        "extra-links": ["airflow_provider_posthog_bx.links.batch_export.BatchExportLink"],
    }
