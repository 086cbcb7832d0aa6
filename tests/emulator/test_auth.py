"""Authentication, scopes, project access, 405s and rate limiting."""

from __future__ import annotations

import pytest

from airflow_provider_posthog_bx.testing import PostHogEmulator

from .conftest import Api, error

pytestmark = pytest.mark.emulator


def test_missing_credentials_401_with_www_authenticate(api):
    resp = api.get("", key=None)
    assert error(resp) == (
        401,
        "authentication_error",
        "not_authenticated",
        "Authentication credentials were not provided.",
        None,
    )
    assert resp.headers["www-authenticate"] == "Bearer"


def test_unknown_and_revoked_key_401(api, emu):
    assert error(api.get("", key="phx_nope")) == (
        401,
        "authentication_error",
        "authentication_failed",
        "Personal API key found in request Authorization header is invalid.",
        None,
    )
    emu.add_api_key("phx_temp")
    assert api.get("", key="phx_temp").status == 200
    emu.revoke_api_key("phx_temp")
    assert error(api.get("", key="phx_temp"))[2] == "authentication_failed"


def test_key_in_query_string(api, emu):
    assert api.get("", key=None, query={"personal_api_key": emu.api_key}).status == 200
    assert error(api.get("", key=None, query={"personal_api_key": "phx_bad"}))[3] == (
        "Personal API key found in request query string is invalid."
    )


def test_read_key_on_write_endpoint_403(api, emu, export):
    emu.add_api_key("phx_ro", scopes=["batch_export:read"])
    ro = Api(emu, "phx_ro")
    assert ro.get(export["id"]).status == 200
    assert ro.get(export["id"] + "/logs").status == 200
    assert error(ro.post(export["id"] + "/pause")) == (
        403,
        "authentication_error",
        "permission_denied",
        "API key missing required scope 'batch_export:write'",
        None,
    )
    emu.add_api_key("phx_rw", scopes=["batch_export:write"])
    assert Api(emu, "phx_rw").get(export["id"]).status == 200  # write implies read
    emu.add_api_key("phx_other", scopes=["feature_flag:read"])
    assert error(Api(emu, "phx_other").get(""))[3] == (
        "API key missing required scope 'batch_export:read'"
    )


def test_project_scoped_key_and_unknown_project(api, emu):
    emu.add_api_key("phx_p2", project_ids=[2])
    scoped = Api(emu, "phx_p2")
    assert error(scoped.get("")) == (
        403,
        "authentication_error",
        "permission_denied",
        "API key does not have access to the requested project: ID 1.",
        None,
    )
    assert scoped.get(api.path(project=2)).status == 200
    assert error(api.get(api.path(project=99)))[3] == "You don't have access to the project."


def test_backfills_methods_not_allowed(api, emu, export):
    emu.advance(0)
    path = f"{export['id']}/backfills/00000000-0000-0000-0000-000000000000"
    for method in ("PATCH", "PUT", "DELETE"):
        assert error(api.call(method, path, {})) == (
            405,
            "invalid_request",
            "method_not_allowed",
            f'Method "{method}" not allowed.',
            None,
        )
    assert error(api.post(export["id"] + "/runs", {}))[0] == 405


def test_rate_limit_per_key_with_retry_after():
    with PostHogEmulator(rate_limit=(3, 100)) as emu:
        emu.add_api_key("phx_second")
        first, second = Api(emu), Api(emu, "phx_second")
        assert [first.get("").status for _ in range(3)] == [200, 200, 200]
        resp = first.get("")
        status, type_, code, detail, attr = error(resp)
        assert (status, type_, code, attr) == (429, "throttled_error", "throttled", None)
        wait = int(resp.headers["retry-after"])
        assert 1 <= wait <= 60
        assert detail.startswith(f"Request was throttled. Expected available in {wait} second")
        assert second.get("").status == 200  # independent budget
        emu.advance(61)
        assert first.get("").status == 200


def test_sustained_window():
    with PostHogEmulator(rate_limit=(100, 2)) as emu:
        api = Api(emu)
        assert [api.get("").status for _ in range(3)] == [200, 200, 429]
        assert int(api.get("").headers["retry-after"]) > 60
