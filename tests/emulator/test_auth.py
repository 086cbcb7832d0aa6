"""Authentication, scopes, project access, 405s and rate limiting."""

from __future__ import annotations

import pytest

from airflow_provider_posthog_bx.testing import PostHogEmulator

from .conftest import Api, error

pytestmark = pytest.mark.emulator


def test_missing_credentials_401_without_www_authenticate(api):
    resp = api.get("", key=None)
    assert error(resp) == (
        401,
        "authentication_error",
        "not_authenticated",
        "Authentication credentials were not provided.",
        None,
    )
    # drf-exceptions-hog builds its own response: DRF's WWW-Authenticate never reaches clients
    assert "www-authenticate" not in resp.headers
    assert "www-authenticate" not in api.get("", key="phx_nope").headers


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
    assert error(api.get(api.path(project=99))) == (
        404,
        "invalid_request",
        "not_found",
        "Project not found.",
        None,
    )
    assert error(api.post(api.path("/x/pause", project=99)))[3] == "Project not found."


NO_ACTION = (
    ("PATCH", "/{e}/backfills/{z}"),
    ("PUT", "/{e}/backfills/{z}"),
    ("DELETE", "/{e}/backfills/{z}"),
    ("POST", "/{e}/runs"),
    ("POST", "/{e}/logs"),
    ("DELETE", ""),
    ("POST", "/{e}"),
)
DECLARED = (
    ("GET", "/{e}/pause"),
    ("GET", "/{e}/unpause"),
    ("GET", "/{e}/runs/{z}/retry"),
    ("DELETE", "/{e}/runs/{z}/cancel"),
    ("GET", "/{e}/backfills/{z}/cancel"),
    ("POST", "/test"),
    ("GET", "/run_test_step_new"),
    ("GET", "/{e}/run_test_step"),
)
ZERO = "00000000-0000-0000-0000-000000000000"


def _405(method):
    return (405, "invalid_request", "method_not_allowed", f'Method "{method}" not allowed.', None)


def test_unsupported_method_scoped_key_403_legacy_key_405(api, emu, export):
    emu.add_api_key("phx_legacy", scopes=[])  # a legacy key: no scopes, unrestricted
    legacy = Api(emu, "phx_legacy")
    for method, tail in NO_ACTION:
        path = api.path(tail.format(e=export["id"], z=ZERO))
        assert error(api.call(method, path, {})) == (
            403,
            "authentication_error",
            "permission_denied",
            "This action does not support Personal API Key access",
            None,
        ), (method, tail)
        assert error(legacy.call(method, path, {})) == _405(method), (method, tail)


def test_unsupported_method_on_actions_declaring_scopes_405(api, emu, export):
    emu.add_api_key("phx_ro", scopes=["batch_export:read"])
    for method, tail in DECLARED:
        path = api.path(tail.format(e=export["id"], z=ZERO))
        assert error(api.call(method, path, {})) == _405(method), (method, tail)
    # the declared scope is still checked first: a read key on a write action is 403
    denied = error(Api(emu, "phx_ro").call("GET", api.path(f"/{export['id']}/pause")))
    assert denied[3] == "API key missing required scope 'batch_export:write'"


def test_rate_limit_on_by_default_with_posthog_numbers():
    with PostHogEmulator() as emu:
        api = Api(emu)
        statuses = [api.get("").status for _ in range(481)]
        assert statuses[:480] == [200] * 480 and statuses[480] == 429
        assert error(api.get(""))[2] == "throttled"


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
