"""Retries, error mapping and the legacy backfill route, counted on what the emulator received."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from airflow_provider_posthog_bx import api
from airflow_provider_posthog_bx._compat import AirflowFailException
from airflow_provider_posthog_bx.exceptions import (
    PostHogAmbiguousRequestError,
    PostHogAPIError,
    PostHogAuthError,
    PostHogConcurrencyLimitError,
    PostHogNotFoundError,
    PostHogRateLimitError,
    PostHogServerError,
    PostHogTransportError,
    PostHogValidationError,
)
from airflow_provider_posthog_bx.hooks.posthog import PostHogHook

from .conftest import FAST_RETRY, SECRET_KEY, closed_port, hours_ago, iso

HOOK_LOGGER = "airflow_provider_posthog_bx.hooks.posthog"
BACKFILLS = r"/backfills/$"


def detail_path(export_id: str) -> str:
    return f"/api/projects/1/batch_exports/{export_id}/"


def bounds(emu) -> tuple[str, str]:
    return iso(hours_ago(emu, 3)), iso(hours_ago(emu, 1))


def statuses(emu, method: str = "*") -> list[int]:
    return [r.status for r in emu.requests if method in ("*", r.method)]


# ---------------------------------------------------------------------------------------------
# Transport failures


def test_connection_refused_is_retried_then_transport_error(set_conn, caplog):
    port = closed_port()
    conn = set_conn(host=f"http://127.0.0.1:{port}", password=SECRET_KEY, extra={"project_id": 1})
    hook = PostHogHook(
        conn, retry_policy=api.RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05)
    )
    caplog.set_level(logging.WARNING, logger=HOOK_LOGGER)
    with pytest.raises(PostHogTransportError) as info:
        hook.list_batch_exports()
    error = info.value
    assert type(error) is PostHogTransportError
    assert error.sent is False
    assert str(error) == (
        f"PostHog API GET /api/projects/1/batch_exports/ failed: could not connect to "
        f"http://127.0.0.1:{port} (after 3 tries)"
    )
    retries = [r.getMessage() for r in caplog.records if r.name == HOOK_LOGGER]
    assert len(retries) == 2
    assert "attempt 2 of 3" in retries[0] and "attempt 3 of 3" in retries[1]


def test_connection_refused_on_create_backfill_is_retried_too(set_conn, caplog):
    # Nothing reached PostHog, so even a non-idempotent request may be re-sent.
    conn = set_conn(
        host=f"http://127.0.0.1:{closed_port()}", password=SECRET_KEY, extra={"project_id": 1}
    )
    hook = PostHogHook(conn, retry_policy=api.RetryPolicy(max_attempts=2, backoff_base=0.01))
    caplog.set_level(logging.WARNING, logger=HOOK_LOGGER)
    with pytest.raises(PostHogTransportError) as info:
        hook.create_backfill(str(uuid.uuid4()), "2026-01-01T00:00:00Z", "2026-01-01T02:00:00Z")
    assert type(info.value) is PostHogTransportError  # not "ambiguous": nothing was sent
    assert "(after 2 tries)" in str(info.value)
    assert len([r for r in caplog.records if r.name == HOOK_LOGGER]) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_on_get_are_retried_until_success(emu, hook, export, status):
    fault = emu.add_fault("GET", f"^{detail_path(export['id'])}$", status=status, times=2)
    assert hook.get_batch_export(export["id"])["id"] == export["id"]
    assert fault.hits == 2
    assert statuses(emu) == [status, status, 200]


def test_gateway_errors_exhaust_retries_and_say_how_many_tries(emu, conn_id, export):
    hook = PostHogHook(conn_id, retry_policy=api.RetryPolicy(max_attempts=4, backoff_base=0.01))
    emu.add_fault("GET", f"^{detail_path(export['id'])}$", status=503, times=None)
    with pytest.raises(PostHogServerError) as info:
        hook.get_batch_export(export["id"])
    assert info.value.status == 503 and info.value.attempts == 4
    assert str(info.value).startswith(
        f"PostHog API GET {detail_path(export['id'])} returned 503 (no error code): "
    )
    assert str(info.value).endswith("(after 4 tries)")
    assert statuses(emu) == [503] * 4


def test_503_on_create_backfill_is_not_retried(emu, hook, export):
    emu.add_fault("POST", BACKFILLS, status=503)
    with pytest.raises(PostHogAmbiguousRequestError) as info:
        hook.create_backfill(export["id"], *bounds(emu))
    assert info.value.sent is True
    assert "returned 503" in str(info.value)
    assert emu.count("POST", BACKFILLS) == 1
    assert emu.count("POST", r"/backfill/$") == 0


def test_500_on_get_is_not_retried(emu, hook, export):
    emu.add_fault("GET", f"^{detail_path(export['id'])}$", status=500)
    with pytest.raises(PostHogServerError) as info:
        hook.get_batch_export(export["id"])
    assert (info.value.status, info.value.code, info.value.detail) == (
        500,
        "error",
        "A server error occurred.",
    )
    assert statuses(emu) == [500]


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        (400, PostHogValidationError, "invalid_input"),
        (401, PostHogAuthError, "authentication_failed"),
        (403, PostHogAuthError, "permission_denied"),
        (404, PostHogNotFoundError, "not_found"),
    ],
)
def test_client_errors_are_never_retried(emu, hook, export, status, cls, code):
    emu.add_fault("*", f"^{detail_path(export['id'])}", status=status, times=None)
    with pytest.raises(cls) as info:
        hook.get_batch_export(export["id"])
    assert (info.value.status, info.value.code) == (status, code)
    assert isinstance(info.value, AirflowFailException)
    with pytest.raises(cls):
        hook.pause_batch_export(export["id"])
    with pytest.raises(cls):
        hook.create_backfill(export["id"], *bounds(emu))
    assert statuses(emu) == [status] * 3


def test_throttled_get_waits_retry_after(emu, hook, export):
    emu.add_fault("GET", f"^{detail_path(export['id'])}$", status=429, retry_after=1)
    started = time.monotonic()
    assert hook.get_batch_export(export["id"])["id"] == export["id"]
    assert time.monotonic() - started >= 1.0
    assert statuses(emu) == [429, 200]


def test_throttled_create_backfill_is_retried_once_and_creates_one(emu, hook, export):
    emu.add_fault("POST", BACKFILLS, status=429, retry_after=1)
    started = time.monotonic()
    backfill_id = hook.create_backfill(export["id"], *bounds(emu))
    assert time.monotonic() - started >= 1.0
    assert statuses(emu, "POST") == [429, 201]
    assert [b["id"] for b in emu.backfills(export["id"])] == [backfill_id]


def test_throttled_until_retries_run_out(emu, conn_id, export):
    hook = PostHogHook(conn_id, retry_policy=api.RetryPolicy(max_attempts=2, backoff_base=0.01))
    emu.add_fault("GET", f"^{detail_path(export['id'])}$", status=429, retry_after=1, times=None)
    with pytest.raises(PostHogRateLimitError) as info:
        hook.get_batch_export(export["id"])
    assert info.value.code == "throttled" and info.value.status == 429
    assert str(info.value).endswith("(after 2 tries)")
    assert not isinstance(info.value, AirflowFailException)
    assert statuses(emu) == [429, 429]


def test_real_throttle_is_honoured(make_emulator, set_conn):
    emu = make_emulator(rate_limit=(2, 1000))
    conn = set_conn(host=emu.url, password=SECRET_KEY, extra={"project_id": 1})
    hook = PostHogHook(conn, retry_policy=FAST_RETRY)
    export = emu.create_batch_export()
    hook.get_batch_export(export["id"])
    hook.get_batch_export(export["id"])
    emu.advance(59)  # the emulator throttles on its own clock: one more second to wait
    started = time.monotonic()
    assert hook.get_batch_export(export["id"])["id"] == export["id"]
    assert time.monotonic() - started >= 1.0
    assert statuses(emu) == [200, 200, 429, 200]


def test_concurrency_limit_is_not_retried(make_emulator, set_conn):
    emu = make_emulator(max_concurrent_backfills=1)
    conn = set_conn(host=emu.url, password=SECRET_KEY, extra={"project_id": 1})
    hook = PostHogHook(conn, retry_policy=FAST_RETRY)
    export = emu.create_batch_export()
    hook.create_backfill(export["id"], *bounds(emu))
    with pytest.raises(PostHogConcurrencyLimitError) as info:
        hook.create_backfill(export["id"], *bounds(emu))
    error = info.value
    assert (error.status, error.code, error.type) == (
        429,
        "too_many_concurrent_backfills",
        "server_error",
    )
    assert error.detail.startswith("This team already has 1 batch export backfills running.")
    assert statuses(emu, "POST") == [201, 429]
    assert len(emu.backfills(export["id"])) == 1


def test_read_timeout_on_get_is_retried(emu, conn_id, export):
    hook = PostHogHook(conn_id, timeout=(1, 0.5), retry_policy=FAST_RETRY)
    fault = emu.add_fault("GET", f"^{detail_path(export['id'])}$", delay=1.0)
    assert hook.get_batch_export(export["id"])["id"] == export["id"]
    assert fault.hits == 1
    assert emu.count("GET", detail_path(export["id"])) == 2


def test_read_timeout_on_create_backfill_is_ambiguous(emu, conn_id, export):
    hook = PostHogHook(conn_id, timeout=(1, 0.5), retry_policy=FAST_RETRY)
    emu.add_fault("POST", BACKFILLS, delay=1.0, process=True)
    with pytest.raises(PostHogAmbiguousRequestError) as info:
        hook.create_backfill(export["id"], *bounds(emu))
    assert info.value.sent is True
    assert str(info.value) == (
        f"PostHog API POST {detail_path(export['id'])}backfills/ failed: "
        "timed out waiting for PostHog's answer"
    )
    assert emu.count("POST", BACKFILLS) == 1
    assert len(emu.backfills(export["id"])) == 1  # PostHog did create it


def test_dropped_connection_on_get_is_retried(emu, hook, export):
    emu.add_fault("GET", f"^{detail_path(export['id'])}$", drop=True)
    assert hook.get_batch_export(export["id"])["id"] == export["id"]
    assert statuses(emu) == [0, 200]  # 0: no response was sent


def test_dropped_connection_on_create_backfill_is_ambiguous(emu, hook, export):
    emu.add_fault("POST", BACKFILLS, drop=True, process=True)
    with pytest.raises(PostHogAmbiguousRequestError) as info:
        hook.create_backfill(export["id"], *bounds(emu))
    assert "the connection was closed before PostHog answered" in str(info.value)
    assert emu.count("POST", BACKFILLS) == 1
    assert len(emu.backfills(export["id"])) == 1


def test_malformed_json_on_get_is_retried(emu, hook, export):
    emu.add_fault("GET", f"^{detail_path(export['id'])}$", malformed=True)
    assert hook.get_batch_export(export["id"])["id"] == export["id"]
    assert emu.count("GET", detail_path(export["id"])) == 2


def test_malformed_json_until_retries_run_out(emu, conn_id, export):
    hook = PostHogHook(conn_id, retry_policy=api.RetryPolicy(max_attempts=3, backoff_base=0.01))
    emu.add_fault("GET", f"^{detail_path(export['id'])}$", malformed=True, times=None)
    with pytest.raises(PostHogTransportError) as info:
        hook.get_batch_export(export["id"])
    assert str(info.value) == (
        f"PostHog API GET {detail_path(export['id'])} failed: PostHog answered 200 with a body "
        "that is not valid JSON (after 3 tries)"
    )
    assert emu.count("GET", detail_path(export["id"])) == 3


def test_malformed_json_on_create_backfill_is_ambiguous(emu, hook, export):
    emu.add_fault("POST", BACKFILLS, malformed=True, process=True)
    with pytest.raises(PostHogAmbiguousRequestError, match="not valid JSON"):
        hook.create_backfill(export["id"], *bounds(emu))
    assert emu.count("POST", BACKFILLS) == 1


# ---------------------------------------------------------------------------------------------
# Error mapping, end to end


def test_error_attributes_from_a_real_posthog_error(emu, hook, export):
    end = iso(hours_ago(emu, -2))
    with pytest.raises(PostHogValidationError) as info:
        hook.create_backfill(export["id"], iso(hours_ago(emu, 3)), end)
    error = info.value
    path = f"/api/projects/1/batch_exports/{export['id']}/backfills/"
    detail = f"The provided 'end_at' ({end}) is in the future"
    assert (error.status, error.type, error.code, error.attr, error.detail) == (
        400,
        "validation_error",
        "invalid_input",
        None,
        detail,
    )
    assert (error.method, error.path) == ("POST", path)
    assert str(error) == f"PostHog API POST {path} returned 400 (invalid_input): {detail}"
    assert isinstance(error, AirflowFailException)


@pytest.mark.parametrize(
    ("status", "cls", "fail"),
    [
        (400, PostHogValidationError, True),
        (401, PostHogAuthError, True),
        (403, PostHogAuthError, True),
        (404, PostHogNotFoundError, True),
        (405, PostHogAPIError, False),
        (500, PostHogServerError, False),
    ],
)
def test_each_status_maps_to_its_error(emu, hook, export, status, cls, fail):
    emu.add_fault("GET", "/runs/$", status=status)
    with pytest.raises(PostHogAPIError) as info:
        hook.list_runs(export["id"])
    assert type(info.value) is cls
    assert info.value.status == status and info.value.method == "GET"
    assert info.value.path == f"/api/projects/1/batch_exports/{export['id']}/runs/"
    assert isinstance(info.value, AirflowFailException) is fail


def test_auth_errors_from_the_emulator(emu, set_conn, export):
    emu.add_api_key("phx_readonly_key", scopes=["batch_export:read"])
    conn = set_conn(
        "posthog_readonly", host=emu.url, password="phx_readonly_key", extra={"project_id": 1}
    )
    readonly = PostHogHook(conn, retry_policy=FAST_RETRY)
    assert readonly.get_batch_export(export["id"])["id"] == export["id"]
    with pytest.raises(PostHogAuthError) as info:
        readonly.pause_batch_export(export["id"])
    assert (info.value.status, info.value.code, info.value.detail) == (
        403,
        "permission_denied",
        "API key missing required scope 'batch_export:write'",
    )

    bad = set_conn("posthog_bad", host=emu.url, password="phx_not_a_key", extra={"project_id": 1})
    with pytest.raises(PostHogAuthError) as info:
        PostHogHook(bad, retry_policy=FAST_RETRY).get_batch_export(export["id"])
    assert (info.value.status, info.value.code) == (401, "authentication_failed")
    assert info.value.detail == "Personal API key found in request Authorization header is invalid."
    assert emu.count("*", ".") == 3


# ---------------------------------------------------------------------------------------------
# Legacy backfill route


@pytest.mark.parametrize("mode", ["405", "404", "catch-all"])
def test_create_backfill_falls_back_to_the_legacy_route(emu, hook, export, mode):
    emu.legacy_backfill_route = mode
    start, end = bounds(emu)
    backfill_id = hook.create_backfill(export["id"], start, end)
    base = f"/api/projects/1/batch_exports/{export['id']}"
    assert [(r.method, r.path, r.status) for r in emu.requests] == [
        ("POST", f"{base}/backfills/", 405 if mode == "405" else 404),
        ("POST", f"{base}/backfill/", 200),
    ]
    assert emu.requests[1].body == {"start_at": start, "end_at": end}
    assert [b["id"] for b in emu.backfills(export["id"])] == [backfill_id]


def test_legacy_route_errors_surface_as_usual(emu, hook, export):
    emu.legacy_backfill_route = "405"
    end = iso(hours_ago(emu, -1))
    with pytest.raises(PostHogValidationError) as info:
        hook.create_backfill(export["id"], iso(hours_ago(emu, 3)), end)
    assert info.value.path == f"/api/projects/1/batch_exports/{export['id']}/backfill/"
    assert info.value.detail == f"The provided 'end_at' ({end}) is in the future"


def test_unknown_export_is_not_found_without_fallback(emu, hook):
    missing = str(uuid.uuid4())
    with pytest.raises(PostHogNotFoundError) as info:
        hook.create_backfill(missing, *bounds(emu))
    assert (info.value.status, info.value.type, info.value.detail) == (
        404,
        "invalid_request",
        "BatchExport not found.",
    )
    assert [r.path for r in emu.requests] == [f"/api/projects/1/batch_exports/{missing}/backfills/"]
