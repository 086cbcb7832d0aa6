"""Airflow finds this provider, and the metadata it finds is what Airflow's schema accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import airflow_provider_posthog_bx
from airflow_provider_posthog_bx.get_provider_info import get_provider_info

AIRFLOW_BIN = Path(sys.executable).with_name("airflow")


def test_provider_info_matches_installed_airflow_schema() -> None:
    import jsonschema

    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    assert info["package-name"] == "airflow-provider-posthog-bx"
    assert info["versions"] == [airflow_provider_posthog_bx.__version__]
    [conn_type] = info["connection-types"]
    assert conn_type["connection-type"] == "posthog"
    assert conn_type["hook-class-name"] == "airflow_provider_posthog_bx.hooks.posthog.PostHogHook"


def test_connection_type_matches_airflow_3_2_declarative_form_schema() -> None:
    """Airflow 3.2+ reads the connection form from provider info (schema in provider.yaml's)."""
    import jsonschema

    schema = json.loads(files("airflow").joinpath("provider.yaml.schema.json").read_text())
    conn_schema = schema["properties"]["connection-types"]
    jsonschema.validate(get_provider_info()["connection-types"], conn_schema)


def test_every_module_and_class_named_is_in_this_package() -> None:
    info = get_provider_info()
    names: list[str] = [
        module
        for kind in ("hooks", "operators", "sensors", "triggers")
        for entry in info[kind]
        for module in entry["python-modules"]
    ]
    names += [c["hook-class-name"] for c in info["connection-types"]]
    names += info["extra-links"]
    assert len(names) == 11
    assert all(n.startswith("airflow_provider_posthog_bx.") for n in names), names


def test_airflow_discovers_the_provider() -> None:
    proc = subprocess.run(
        [str(AIRFLOW_BIN), "providers", "list", "-o", "json"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # Airflow may log to stdout before the JSON document: parse from the first "[".
    providers = json.loads(proc.stdout[proc.stdout.index("[") :])
    ours = [p for p in providers if p["package_name"] == "airflow-provider-posthog-bx"]
    assert ours, [p["package_name"] for p in providers]
    assert ours[0]["version"] == airflow_provider_posthog_bx.__version__


def test_get_provider_info_does_not_import_airflow() -> None:
    code = (
        "import sys\n"
        "from airflow_provider_posthog_bx.get_provider_info import get_provider_info\n"
        "get_provider_info()\n"
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.strip() == "[]", proc.stdout


def _posthog_connection_type() -> dict:
    [conn_type] = get_provider_info()["connection-types"]
    return conn_type


def test_project_id_field_is_optional_in_the_form() -> None:
    """Airflow 3.2+ validates conn-fields with their schema: a string-only one is required."""
    import jsonschema

    schema = _posthog_connection_type()["conn-fields"]["project_id"]["schema"]
    jsonschema.validate(None, schema)  # an empty Project ID is valid
    jsonschema.validate("12345", schema)


def test_placeholders_are_short_and_only_for_fields_airflow_shows() -> None:
    placeholders = _posthog_connection_type()["ui-field-behaviour"]["placeholders"]
    # Airflow 3's form shows placeholders of these fields only (StandardHookFields); not extra.
    assert set(placeholders) <= {"description", "schema", "host", "port", "login", "password"}
    assert placeholders["host"] == "https://us.posthog.com"
    assert all(len(text) <= 60 for text in placeholders.values()), placeholders


def test_description_renders_as_plain_words_on_the_providers_page() -> None:
    # Airflow strips `_<> and then glues a URL to the following word.
    description = get_provider_info()["description"]
    assert not any(mark in description for mark in "`_<>"), description
    assert "://" not in description


def test_documentation_url_exists_and_agrees_with_provider_info() -> None:
    import tomllib

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    urls = tomllib.loads(pyproject.read_text())["project"].get("urls", {})
    # Without it, Airflow's Providers page links to airflow.apache.org/docs/<package>/<version>/,
    # which does not exist for this provider.
    assert "Documentation" in urls
    [integration] = get_provider_info()["integrations"]
    assert urls["Documentation"] == integration["external-doc-url"]
