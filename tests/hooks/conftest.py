"""Fixtures for the hook tests: emulators stepped by hand, and Airflow connections to them.

The plugin's ``posthog_emulator_default`` moves backfills on after 0.2 s of real time;
these tests need lifecycles that stand still until ``advance()`` is called (e.g. "404 during the
create delay"), so they start their own emulators with 5 s steps.

Connections are given as ``AIRFLOW_CONN_*`` JSON env vars: neither Airflow line touches the
metadata database for them (the tests' Airflow home has no migrated database).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest

from airflow_provider_posthog_bx import api
from airflow_provider_posthog_bx.hooks.posthog import PostHogHook
from airflow_provider_posthog_bx.testing import PostHogEmulator
from airflow_provider_posthog_bx.testing.pytest_plugin import (
    CONN_ENV,
    CONN_ID,
    EmulatorFactory,
    connection_env,
)

T = TypeVar("T")

UTC = timezone.utc
# Retries without real waiting: 10-50 ms between tries.
FAST_RETRY = api.RetryPolicy(backoff_base=0.01, backoff_max=0.05)
# The key the default connection uses: long and unique, so a leak is unmistakable.
SECRET_KEY = "phx_hooktest_s3cr3t_9f8e7d6c5b4a"


@pytest.fixture
def make_emulator(posthog_emulator: EmulatorFactory) -> Callable[..., PostHogEmulator]:
    """Start emulators (5 s lifecycle steps unless overridden), each with ``SECRET_KEY``."""

    def make(**options: Any) -> PostHogEmulator:
        settings: dict[str, Any] = {
            "backfill_create_delay": 5.0,
            "backfill_starting_seconds": 5.0,
            "run_seconds": 5.0,
            **options,
        }
        emulator = posthog_emulator(**settings)
        emulator.add_api_key(SECRET_KEY, scopes=["*"])
        return emulator

    return make


@pytest.fixture
def emu(make_emulator: Callable[..., PostHogEmulator]) -> PostHogEmulator:
    return make_emulator()


@pytest.fixture
def set_conn(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define a ``posthog`` connection as ``AIRFLOW_CONN_<ID>`` JSON; returns its id."""

    def define(conn_id: str = "posthog_default", **fields: Any) -> str:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "posthog", **fields})
        )
        return conn_id

    return define


@pytest.fixture
def conn_id(emu: PostHogEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """``posthog_default`` pointing at ``emu`` with ``SECRET_KEY`` and project 1."""
    monkeypatch.setenv(CONN_ENV, connection_env(emu, api_key=SECRET_KEY))
    return CONN_ID


@pytest.fixture
def hook(conn_id: str) -> PostHogHook:
    return PostHogHook(conn_id, timeout=(2, 5), retry_policy=FAST_RETRY)


@pytest.fixture
def export(emu: PostHogEmulator) -> dict[str, Any]:
    return emu.create_batch_export(name="hourly", interval="hour")


def closed_port() -> int:
    """A loopback TCP port nobody listens on (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hours_ago(emu: PostHogEmulator, hours: int) -> datetime:
    """A whole hour ``hours`` before the emulator's now (UTC)."""
    return emu.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def arun(coro: Awaitable[T]) -> T:
    """Run a coroutine in a fresh event loop; close that loop's shared httpx client after."""
    from airflow_provider_posthog_bx.hooks import posthog_async

    async def main() -> T:
        try:
            return await coro
        finally:
            await posthog_async.shared_client().aclose()

    return asyncio.run(main())


class HeaderCapture:
    """A loopback HTTP server that records each request's headers and answers an empty page.

    The emulator does not record headers; this shows what the client really put on the wire.
    """

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                capture.headers.append({k.lower(): v for k, v in self.headers.items()})
                body = b'{"count": 0, "next": null, "previous": null, "results": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def header_capture() -> Iterator[HeaderCapture]:
    server = HeaderCapture()
    yield server
    server.stop()
