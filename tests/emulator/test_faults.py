"""Injected faults and the request log."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from .conftest import Api, error

pytestmark = pytest.mark.emulator

RANGE = {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-01T02:00:00Z"}


def test_status_fault_n_times_then_normal(api, emu, export):
    fault = emu.add_fault("GET", r"/batch_exports/[^/]+/?$", status=500, times=2)
    assert error(api.get(export["id"])) == (
        500,
        "server_error",
        "error",
        "A server error occurred.",
        None,
    )
    assert api.get(export["id"]).status == 500
    assert api.get(export["id"]).status == 200
    assert fault.hits == 2
    assert api.get("").status == 200  # list path does not match


def test_proxy_status_body(api, emu, export):
    emu.add_fault("*", r"/batch_exports", status=503, times=None)
    resp = api.get(export["id"])
    assert resp.status == 503 and resp.headers["content-type"] == "text/html"
    assert api.post(export["id"] + "/pause").status == 503
    emu.clear_faults()
    assert api.get(export["id"]).status == 200


def test_429_with_retry_after(api, emu, export):
    emu.add_fault("GET", "", status=429, retry_after=7)
    resp = api.get(export["id"])
    assert resp.headers["retry-after"] == "7"
    assert error(resp) == (
        429,
        "throttled_error",
        "throttled",
        "Request was throttled. Expected available in 7 seconds.",
        None,
    )


def test_delay_exceeds_client_timeout(api, emu, export):
    emu.add_fault("GET", "", delay=0.6)
    with pytest.raises((TimeoutError, socket.timeout)):
        api.get(export["id"], timeout=0.2)
    start = time.monotonic()
    assert api.get(export["id"]).status == 200
    assert time.monotonic() - start < 0.5


def test_drop_connection(api, emu, export):
    emu.add_fault("GET", "", drop=True)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        api.get(export["id"])
    assert emu.requests[-1].status == 0
    assert api.get(export["id"]).status == 200


def test_malformed_json(api, emu, export):
    emu.add_fault("GET", "", malformed=True)
    resp = api.get(export["id"])
    assert resp.status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.raw)


def test_body_override(api, emu, export):
    emu.add_fault("GET", "", status=200, body={"weird": True})
    assert api.get(export["id"]).json == {"weird": True}


def test_process_true_creates_backfill_but_client_sees_fault(api, emu, export):
    emu.add_fault("POST", r"/backfills/?$", status=502, process=True)
    assert api.post(f"{export['id']}/backfills", RANGE).status == 502
    assert len(emu.backfills(export["id"])) == 1
    emu.add_fault("POST", r"/backfills/?$", drop=True, process=True)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        api.post(f"{export['id']}/backfills", RANGE)
    assert len(emu.backfills(export["id"])) == 2
    emu.add_fault("POST", r"/backfills/?$", status=500)
    assert api.post(f"{export['id']}/backfills", RANGE).status == 500
    assert len(emu.backfills(export["id"])) == 2  # not processed


def test_request_log_contents_and_no_key(api, emu, export):
    emu.clear_requests()
    api.post(f"{export['id']}/backfills", RANGE)
    api.get("", query={"limit": "5"})
    api.get("", key="phx_wrong_secret_key")
    api.get("", key=None, query={"personal_api_key": emu.api_key})
    reqs = emu.requests
    assert [(r.method, r.status) for r in reqs] == [
        ("POST", 201),
        ("GET", 200),
        ("GET", 401),
        ("GET", 200),
    ]
    assert reqs[0].path == f"/api/projects/1/batch_exports/{export['id']}/backfills"
    assert reqs[0].body == RANGE and reqs[1].query == {"limit": ["5"]}
    assert reqs[0].key_id is not None and reqs[0].key_id.startswith("phx_")
    assert reqs[0].key_id == reqs[1].key_id == reqs[3].key_id != reqs[2].key_id
    text = repr(reqs)
    assert emu.api_key not in text and "phx_wrong_secret_key" not in text
    assert emu.count("POST", r"/backfills/?$") == 1 and emu.count("GET", "") == 3
    emu.clear_requests()
    assert emu.requests == []


def test_faults_do_not_leak_across_methods(emu, export):
    api = Api(emu)
    emu.add_fault("DELETE", "", status=500, times=None)
    assert api.get(export["id"]).status == 200
