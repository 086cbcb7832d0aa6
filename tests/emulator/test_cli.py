"""The emulator CLI: ``python -m ...testing`` and the old ``python -m ...testing.emulator``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.emulator

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "module",
    ["airflow_provider_posthog_bx.testing", "airflow_provider_posthog_bx.testing.emulator"],
)
def test_cli_starts_prints_serves_and_exits_on_sigterm(tmp_path, module):
    ready = tmp_path / "ready.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            module,
            "--port",
            "0",
            "--api-key",
            "phx_cli",
            "--ready-file",
            str(ready),
            "--run-seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = [proc.stdout.readline().strip() for _ in range(4)]
        assert lines[0].startswith("PostHog emulator listening on http://127.0.0.1:")
        assert lines[1] == "api key: phx_cli" and lines[2] == "project id: 1"
        assert lines[3].startswith("batch export id: ")
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["url"] == lines[0].rsplit(" ", 1)[1] and info["api_key"] == "phx_cli"
        req = urllib.request.Request(
            f"{info['url']}/api/projects/1/batch_exports/{info['batch_export_id']}",
            headers={"Authorization": "Bearer phx_cli"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read())["interval"] == "hour"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_legacy_deployment_flag(tmp_path):
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_posthog_bx.testing",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--legacy-deployment",
            "no-backfills",
        ],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        req = urllib.request.Request(
            f"{info['url']}/api/projects/1/batch_exports/{info['batch_export_id']}/backfills/",
            headers={"Authorization": f"Bearer {info['api_key']}"},
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(req, timeout=5)
        assert caught.value.code == 404
        assert json.loads(caught.value.read())["detail"] == "Endpoint not found."
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_emulator_module_still_exports_the_class_and_main():
    from airflow_provider_posthog_bx.testing import PostHogEmulator
    from airflow_provider_posthog_bx.testing import emulator as shim

    assert shim.PostHogEmulator is PostHogEmulator and callable(shim.main)


def _serve(tmp_path, *args):
    ready = tmp_path / "ready.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    module = "airflow_provider_posthog_bx.testing"
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", "--ready-file", str(ready), *args],
        stdout=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 15
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())


def _statuses(info, count):
    out = []
    for _ in range(count):
        req = urllib.request.Request(
            f"{info['url']}/api/projects/1/batch_exports/",
            headers={"Authorization": f"Bearer {info['api_key']}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                out.append(resp.status)
        except urllib.error.HTTPError as exc:
            out.append(exc.code)
    return out


@pytest.mark.parametrize(
    "args,expected",
    [
        ((), [200, 429]),
        (("--rate-limit", "off"), [200, 200]),
        (("--rate-limit", "2/min,9/h"), [200, 429]),
    ],
)
def test_cli_rate_limit_default_on_and_off(tmp_path, args, expected):
    proc, info = _serve(tmp_path, *args)
    try:
        limit = 2 if args[1:] == ("2/min,9/h",) else 480
        got = _statuses(info, limit + 1)
        assert got[:limit] == [200] * limit and [got[0], got[-1]] == expected
    finally:
        proc.terminate()
        proc.wait(timeout=10)
