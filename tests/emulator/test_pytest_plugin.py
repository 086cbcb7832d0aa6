"""The opt-in pytest plugin: the emulator factory, the default emulator and the connection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from airflow_provider_posthog_bx.testing.pytest_plugin import (
    CONN_ENV,
    FAST_DEFAULTS,
    FAST_TIMINGS,
    connection_dict,
    connection_env,
)

from .conftest import Api, error

pytestmark = pytest.mark.emulator

ROOT = Path(__file__).resolve().parents[2]
RANGE = {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-01T01:00:00Z"}


def test_factory_without_kwargs_is_fast(posthog_emulator):
    emu = posthog_emulator()
    assert emu.backfill_create_delay == FAST_TIMINGS["backfill_create_delay"] == 0.2
    api, export = Api(emu), emu.create_batch_export()
    bid = api.post(f"{export['id']}/backfills", RANGE).json["backfill_id"]
    path = f"{export['id']}/backfills/{bid}"
    assert api.get(path).status == 404  # real time, no advance(): the row comes 0.2 s later
    deadline = time.monotonic() + 5
    while (resp := api.get(path)).status == 404 or resp.json["status"] != "Completed":
        assert time.monotonic() < deadline, resp.json
        time.sleep(0.05)
    assert posthog_emulator().url != emu.url  # one emulator per call


def test_factory_kwargs_reach_the_emulator_and_timings_default_fast(posthog_emulator):
    emu = posthog_emulator(api_key="phx_plugin_key", max_concurrent_backfills=1, run_seconds=5)
    assert emu.api_key == "phx_plugin_key" and emu.backfill_create_delay == 0.2
    api, export = Api(emu), emu.create_batch_export()
    assert api.post(f"{export['id']}/backfills", RANGE).status == 201
    assert error(api.post(f"{export['id']}/backfills", RANGE))[2] == "too_many_concurrent_backfills"
    assert api.get("", key="phx_emulator_key").status == 401  # the default key was replaced


def test_posthog_connection_points_posthog_default_at_the_emulator(
    posthog_connection, posthog_emulator_default
):
    emu = posthog_emulator_default
    assert posthog_connection == "posthog_default"
    conn = json.loads(os.environ[CONN_ENV])
    assert conn == connection_dict(emu) == json.loads(connection_env(emu))
    assert conn == {
        "conn_type": "posthog",
        "host": emu.url,
        "password": emu.api_key,
        "extra": {"project_id": emu.project_id},
    }
    export = emu.create_batch_export(name="via the connection")
    # Only what the connection says: host, key and project.
    api = Api(emu, conn["password"])
    resp = api.get(f"/api/projects/{conn['extra']['project_id']}/batch_exports/")
    assert urlsplit(conn["host"]).port == urlsplit(emu.url).port
    assert [e["id"] for e in resp.json["results"]] == [export["id"]]


def test_connection_dict_with_another_key(posthog_emulator):
    emu = posthog_emulator()
    assert connection_dict(emu, api_key="phx_other")["password"] == "phx_other"


INNER_CONFTEST = """
pytest_plugins = ["airflow_provider_posthog_bx.testing.pytest_plugin"]
"""

INNER_TEST = """
import json, os, socket, sys, urllib.request
from urllib.parse import urlsplit

URLS = os.environ["URLS_FILE"]


def test_connection(posthog_connection, posthog_emulator_default):
    conn = json.loads(os.environ["AIRFLOW_CONN_POSTHOG_DEFAULT"])
    req = urllib.request.Request(
        conn["host"] + f"/api/projects/{conn['extra']['project_id']}/batch_exports/",
        headers={"Authorization": "Bearer " + conn["password"]},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read())["count"] == 0
    with open(URLS, "a") as out:
        out.write(posthog_emulator_default.url + "\\n")


def test_factory(posthog_emulator):
    with open(URLS, "a") as out:
        for _ in range(2):
            out.write(posthog_emulator(run_seconds=0).url + "\\n")


def test_earlier_emulators_were_stopped_at_their_teardown():
    urls = open(URLS).read().split()
    assert len(urls) == 3
    for url in urls:
        parts = urlsplit(url)
        try:
            socket.create_connection((parts.hostname, parts.port), timeout=1).close()
        except OSError:
            continue
        raise AssertionError(f"{url} still listening")


def test_no_airflow_imported():
    assert not [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")]
"""


def test_plugin_loads_from_pytest_plugins_and_stops_emulators_at_teardown(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(textwrap.dedent(INNER_CONFTEST))
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TEST))
    urls = tmp_path / "urls.txt"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "URLS_FILE": str(urls),
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # only this plugin, nothing that imports Airflow
    }
    env.pop(CONN_ENV, None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout


def test_fixtures_turn_throttling_off_unless_asked(posthog_emulator, posthog_emulator_default):
    assert FAST_DEFAULTS == {**FAST_TIMINGS, "rate_limit": None}
    for emu in (posthog_emulator(), posthog_emulator_default):
        api = Api(emu)
        assert {api.get("").status for _ in range(490)} == {200}  # past PostHog's 480/min
    throttled = Api(posthog_emulator(rate_limit=(2, 100)))
    assert [throttled.get("").status for _ in range(3)] == [200, 200, 429]
