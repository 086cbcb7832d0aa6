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
        # Plain text: Airflow's Providers page strips RST marks and glues a link to the next word.
        "description": "Backfill, pause, delete and watch PostHog batch exports from Airflow.",
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
                    # Short enough to show whole. No "extra" placeholder: Airflow 3's form shows
                    # placeholders of the standard fields only, and Project ID has its own field.
                    "placeholders": {
                        "host": "https://us.posthog.com",
                        "password": "phx_... with scopes batch_export:read and batch_export:write",
                    },
                },
                "conn-fields": {
                    "project_id": {
                        "label": "Project ID",
                        "description": "Default PostHog project id; operators may override it.",
                        # Optional: operators may pass project_id instead.
                        "schema": {"type": ["string", "null"]},
                    }
                },
            }
        ],
        "extra-links": ["airflow_provider_posthog_bx.links.batch_export.BatchExportLink"],
    }
