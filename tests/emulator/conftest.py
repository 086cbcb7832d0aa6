"""Fixtures for emulator tests: a running emulator and a tiny stdlib HTTP client.

The emulator fixtures come from the package's pytest plugin, which tests/conftest.py loads.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from airflow_provider_posthog_bx.testing import PostHogEmulator
from airflow_provider_posthog_bx.testing.pytest_plugin import EmulatorFactory

_DEFAULT = object()


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None


class Api:
    """Calls the emulator over real HTTP with http.client (one connection per call)."""

    def __init__(self, emu: PostHogEmulator, key: str | object | None = _DEFAULT) -> None:
        self.emu = emu
        self.key = emu.api_key if key is _DEFAULT else key

    def path(self, tail: str = "", project: int | str | None = None) -> str:
        pid = self.emu.project_id if project is None else project
        return f"/api/projects/{pid}/batch_exports{tail}"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | list[tuple[str, str]] | None = None,
        key: str | object | None = _DEFAULT,
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
        timeout: float = 10,
    ) -> Resp:
        if not path.startswith("/"):
            path = self.path("/" + path if path else "")
        if query:
            path += "?" + urlencode(query, doseq=True)
        host, port = urlsplit(self.emu.url).hostname, urlsplit(self.emu.url).port
        conn = http.client.HTTPConnection(host or "127.0.0.1", port, timeout=timeout)
        hdrs = {"Content-Type": "application/json"}
        use_key = self.key if key is _DEFAULT else key
        if use_key is not None:
            hdrs["Authorization"] = f"Bearer {use_key}"
        hdrs.update(headers or {})
        data = (
            raw_body
            if raw_body is not None
            else (json.dumps(body).encode() if body is not None else None)
        )
        try:
            conn.request(method, path, body=data, headers=hdrs)
            response = conn.getresponse()
            return Resp(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            conn.close()

    def get(self, path: str = "", **kw: Any) -> Resp:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return self.call("POST", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return self.call("PATCH", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return self.call("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Resp:
        return self.call("DELETE", path, **kw)


def error(resp: Resp) -> tuple[int, str, str, str, str | None]:
    """(status, type, code, detail, attr) of an error response, asserting the exact key set."""
    body = resp.json
    assert set(body) == {"type", "code", "detail", "attr"}, body
    return resp.status, body["type"], body["code"], body["detail"], body["attr"]


@pytest.fixture
def emu(posthog_emulator: EmulatorFactory) -> PostHogEmulator:
    """Emulator with slow lifecycles (5 s each): tests step them with ``advance``."""
    return posthog_emulator(backfill_create_delay=5, backfill_starting_seconds=5, run_seconds=5)


@pytest.fixture
def api(emu: PostHogEmulator) -> Api:
    return Api(emu)


@pytest.fixture
def export(emu: PostHogEmulator) -> dict[str, Any]:
    return emu.create_batch_export(name="hourly", interval="hour")
