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
