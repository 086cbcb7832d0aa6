"""The posthog connection form, as the installed Airflow's providers manager builds it."""

from __future__ import annotations

from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_2_PLUS
from airflow_provider_posthog_bx.hooks import PostHogHook


def test_ui_field_behaviour_relabels_and_hides():
    behaviour = PostHogHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == ["schema", "login", "port"]
    assert behaviour["relabeling"] == {"host": "PostHog URL", "password": "Personal API key"}
    assert behaviour["placeholders"]["host"] == "https://us.posthog.com"
    assert "extra" not in behaviour["placeholders"]


def test_providers_manager_builds_the_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    behaviours = manager.field_behaviours
    assert behaviours["posthog"]["relabeling"]["password"] == "Personal API key"
    widgets = manager.connection_form_widgets
    assert "extra__posthog__project_id" in widgets
    if not AIRFLOW_V_3_2_PLUS:
        # Airflow 2 builds the field from the hook's WTForms widget.
        field = widgets["extra__posthog__project_id"].field
        assert "Project ID" in str(field.args[0])
    else:
        # Airflow 3.2+ builds it from conn-fields: an empty Project ID must be valid.
        schema = widgets["extra__posthog__project_id"].field["schema"]
        assert "null" in schema["type"]


def test_airflow_3_form_shows_the_placeholders():
    if not AIRFLOW_V_3_2_PLUS:
        return
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    from airflow.providers_manager import ProvidersManager

    behaviour = ProvidersManager().field_behaviours["posthog"]
    fields = HookMetaService._make_standard_fields(behaviour)
    assert fields is not None
    assert fields.host is not None and fields.host.placeholder == "https://us.posthog.com"
    shown = {"description", "schema", "host", "port", "login", "password"}
    assert set(behaviour["placeholders"]) <= shown
