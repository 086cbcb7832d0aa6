"""The Airflow connection: parsing, test_connection(), the User-Agent, and the key never leaking."""

from __future__ import annotations

import logging
import uuid
from importlib.metadata import version

import pytest

from airflow_provider_posthog_bx import __version__, api
from airflow_provider_posthog_bx.exceptions import (
    PostHogConfigError,
    PostHogError,
)
from airflow_provider_posthog_bx.hooks.posthog import PostHogHook, user_agent

from .conftest import FAST_RETRY, SECRET_KEY, arun, closed_port, hours_ago, iso

# ---------------------------------------------------------------------------------------------
# Parsing


def test_json_connection_with_full_url(emu, hook, export):
    settings = hook.settings
    assert settings.base_url == emu.url
    assert settings.project_id == 1
    assert settings.api_key == SECRET_KEY
    assert hook.get_batch_export(export["id"])["id"] == export["id"]
    assert emu.requests[0].path == f"/api/projects/1/batch_exports/{export['id']}/"


def test_bare_host_port_and_schema_fields(emu, set_conn, export):
    port = int(emu.url.rsplit(":", 1)[1])
    conn = set_conn(
        host="127.0.0.1", port=port, schema="http", password=SECRET_KEY, extra={"project_id": 1}
    )
    hook = PostHogHook(conn, retry_policy=FAST_RETRY)
    assert hook.settings.base_url == emu.url
    assert hook.get_batch_export(export["id"])["id"] == export["id"]


def test_uri_connection(emu, monkeypatch, export):
    host_port = emu.url.split("://", 1)[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_POSTHOG_URI", f"posthog://:{SECRET_KEY}@{host_port}/http?project_id=1"
    )
    hook = PostHogHook("posthog_uri", retry_policy=FAST_RETRY)
    assert hook.settings.base_url == emu.url
    assert hook.settings.project_id == 1  # the query string gives a str: parsed to int
    assert hook.get_batch_export(export["id"])["id"] == export["id"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"host": "eu.posthog.com"}, "https://eu.posthog.com"),
        ({"host": "https://eu.posthog.com/"}, "https://eu.posthog.com"),
        ({}, "https://us.posthog.com"),
        ({"host": ""}, "https://us.posthog.com"),
        ({"host": "posthog.internal", "port": 8000}, "https://posthog.internal:8000"),
        # Plain http only to loopback (test_hardening.py: elsewhere with allow_insecure_http).
        ({"host": "localhost", "port": 8000, "schema": "http"}, "http://localhost:8000"),
    ],
)
def test_host_forms(set_conn, fields, expected):
    conn = set_conn("posthog_forms", password=SECRET_KEY, extra={"project_id": 7}, **fields)
    assert PostHogHook(conn).settings.base_url == expected


def test_unusable_host(set_conn):
    conn = set_conn("posthog_ftp", host="ftp://files.example.com", password=SECRET_KEY)
    with pytest.raises(PostHogConfigError, match=r"'ftp://files\.example\.com' is not usable"):
        PostHogHook(conn).settings  # noqa: B018


@pytest.mark.parametrize("project", [1, "1", " 1 "])
def test_project_id_as_int_or_str(emu, set_conn, export, project):
    conn = set_conn(host=emu.url, password=SECRET_KEY, extra={"project_id": project})
    hook = PostHogHook(conn, retry_policy=FAST_RETRY)
    assert hook.project() == 1
    assert hook.get_batch_export(export["id"])["id"] == export["id"]


def test_project_id_argument_overrides_the_connection(emu, set_conn):
    other = emu.create_batch_export(name="in project 2", project_id=emu.other_project_id)
    conn = set_conn(host=emu.url, password=SECRET_KEY, extra={"project_id": 999})
    hook = PostHogHook(conn, project_id=emu.other_project_id, retry_policy=FAST_RETRY)
    assert hook.project() == 2
    assert [e["id"] for e in hook.list_batch_exports()] == [other["id"]]
    assert emu.requests[-1].path == "/api/projects/2/batch_exports/"
    # A method's project_id overrides the hook's.
    assert hook.list_batch_exports(project_id=1) == []
    assert emu.requests[-1].path == "/api/projects/1/batch_exports/"
    assert hook.get_batch_export(other["id"], project_id="2")["id"] == other["id"]


def test_no_project_id_anywhere(emu, set_conn):
    conn = set_conn("posthog_noproject", host=emu.url, password=SECRET_KEY)
    hook = PostHogHook(conn)
    with pytest.raises(PostHogConfigError) as info:
        hook.list_batch_exports()
    assert str(info.value) == (
        "No PostHog project id: pass project_id, or set extra.project_id on connection "
        "'posthog_noproject'"
    )
    assert hook.list_batch_exports(project_id=1) == []


def test_bad_project_id_in_extra(emu, set_conn):
    conn = set_conn(host=emu.url, password=SECRET_KEY, extra={"project_id": "my-project"})
    with pytest.raises(PostHogConfigError) as info:
        PostHogHook(conn).settings  # noqa: B018
    assert str(info.value) == (
        "posthog_default extra.project_id must be a PostHog project id such as 12345 or "
        "'@current' (got 'my-project')"
    )


@pytest.mark.parametrize("password", [None, "", "   "])
def test_missing_key(emu, set_conn, password):
    fields = {"host": emu.url, "extra": {"project_id": 1}}
    if password is not None:
        fields["password"] = password
    conn = set_conn(**fields)
    with pytest.raises(PostHogConfigError) as info:
        PostHogHook(conn).list_batch_exports()
    assert "Connection 'posthog_default' has no API key" in str(info.value)
    assert "personal API key" in str(info.value)
    assert emu.requests == []


def test_trigger_requests_per_minute_extra(set_conn):
    conn = set_conn(
        password=SECRET_KEY, extra={"project_id": 1, "trigger_requests_per_minute": "120"}
    )
    assert PostHogHook(conn).settings.requests_per_minute == 120.0
    conn = set_conn(
        password=SECRET_KEY, extra={"project_id": 1, "trigger_requests_per_minute": "fast"}
    )
    with pytest.raises(
        PostHogConfigError, match=r"trigger_requests_per_minute must be a number \(got 'fast'\)"
    ):
        PostHogHook(conn).settings  # noqa: B018


# ---------------------------------------------------------------------------------------------
# test_connection()


def test_test_connection_ok(emu, hook):
    ok, message = hook.test_connection()
    assert (ok, message) == (True, f"Connected to {emu.url}, project 1.")
    (request,) = emu.requests
    assert (request.method, request.path, request.query, request.status) == (
        "GET",
        "/api/projects/1/batch_exports/",
        {"limit": ["1"], "offset": ["0"]},
        200,
    )


def test_test_connection_bad_key(emu, set_conn):
    conn = set_conn(host=emu.url, password="phx_revoked_or_typo", extra={"project_id": 1})
    ok, message = PostHogHook(conn, retry_policy=FAST_RETRY).test_connection()
    assert ok is False
    assert message.startswith("PostHog rejected the API key: Personal API key found in request")
    # The UI tests under a temporary connection id: never name it; say what the form says.
    assert "posthog_default" not in message
    assert "the connection's password, the form's Personal API key." in message
    assert ".)." not in message
    assert "phx_revoked_or_typo" not in message
    assert len(emu.requests) == 1


def test_test_connection_key_without_read_scope(emu, set_conn):
    emu.add_api_key("phx_flags_only", scopes=["feature_flag:read"])
    conn = set_conn(host=emu.url, password="phx_flags_only", extra={"project_id": 1})
    ok, message = PostHogHook(conn, retry_policy=FAST_RETRY).test_connection()
    assert ok is False
    assert "API key missing required scope 'batch_export:read'" in message
    assert "batch_export:read and batch_export:write scopes" in message


def test_test_connection_unknown_project(emu, set_conn):
    conn = set_conn(host=emu.url, password=SECRET_KEY, extra={"project_id": 4242})
    ok, message = PostHogHook(conn, retry_policy=FAST_RETRY).test_connection()
    assert ok is False
    assert "project 4242" in message and "the Project ID" in message
    assert "extra.project_id" not in message and ".)." not in message
    assert emu.requests[0].path == "/api/projects/4242/batch_exports/"


def test_test_connection_project_404(emu, hook):
    emu.add_fault("GET", ".", status=404)
    ok, message = hook.test_connection()
    assert ok is False
    assert message == (
        f"PostHog has no project 1 at {emu.url}: Not found. Check the Project ID and the "
        "PostHog URL (US or EU Cloud)."
    )


def test_test_connection_unreachable(set_conn):
    port = closed_port()
    conn = set_conn(host=f"http://127.0.0.1:{port}", password=SECRET_KEY, extra={"project_id": 1})
    hook = PostHogHook(conn, retry_policy=api.RetryPolicy(max_attempts=2, backoff_base=0.01))
    ok, message = hook.test_connection()
    assert ok is False
    assert f"could not connect to http://127.0.0.1:{port}" in message


def test_test_connection_config_error(set_conn):
    conn = set_conn(host="https://eu.posthog.com", password="", extra={"project_id": 1})
    ok, message = PostHogHook(conn).test_connection()
    assert ok is False and "has no API key" in message
    assert "posthog_default" not in message


def test_test_connection_without_project_id_names_the_form_field(emu, set_conn):
    conn = set_conn("NOzgz1tA", host=emu.url, password=SECRET_KEY)
    ok, message = PostHogHook(conn).test_connection()
    assert ok is False
    assert "NOzgz1tA" not in message and "extra.project_id" not in message
    assert "Project ID" in message
    assert emu.requests == []


# ---------------------------------------------------------------------------------------------
# What is sent and what is shown


def test_user_agent_names_provider_and_airflow(header_capture, set_conn):
    expected = (
        f"airflow-provider-posthog-bx/{__version__} apache-airflow/{version('apache-airflow')}"
    )
    assert user_agent() == expected
    conn = set_conn(host=header_capture.url, password=SECRET_KEY, extra={"project_id": 1})
    assert PostHogHook(conn).list_batch_exports() == []

    from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

    assert arun(AsyncPostHogHook(conn).list_runs(str(uuid.uuid4()))) == []
    assert len(header_capture.headers) == 2
    for headers in header_capture.headers:  # sync (requests) then async (httpx)
        assert headers["user-agent"] == expected
        assert headers["authorization"] == f"Bearer {SECRET_KEY}"
        assert headers["accept"] == "application/json"


def test_key_never_leaks(emu, set_conn, export, caplog, capfd):
    from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

    caplog.set_level(logging.DEBUG)
    good = set_conn(host=emu.url, password=SECRET_KEY, extra={"project_id": 1})
    wrong_key = "phx_wrong_but_secret_0123456789"
    bad = set_conn("posthog_bad", host=emu.url, password=wrong_key, extra={"project_id": 1})
    down = set_conn(
        "posthog_down",
        host=f"http://127.0.0.1:{closed_port()}",
        password=SECRET_KEY,
        extra={"project_id": 1},
    )
    hook = PostHogHook(good, retry_policy=FAST_RETRY)
    errors: list[BaseException] = []

    def attempt(call) -> None:
        try:
            call()
        except PostHogError as error:
            errors.append(error)

    emu.add_fault("GET", "/runs/$", status=503, times=2)
    assert hook.list_runs(export["id"]) == []  # 503 twice, retried
    emu.add_fault("GET", "/logs/$", status=503, times=None)
    attempt(lambda: hook.get_logs(export["id"]))  # 503 until retries run out
    attempt(lambda: PostHogHook(bad, retry_policy=FAST_RETRY).list_batch_exports())  # 401
    attempt(lambda: hook.get_batch_export(str(uuid.uuid4())))  # 404
    attempt(lambda: PostHogHook(down, retry_policy=FAST_RETRY).list_batch_exports())  # refused
    attempt(
        lambda: hook.create_backfill(export["id"], "2026-01-01T00:00:00", iso(hours_ago(emu, 1)))
    )
    attempt(lambda: arun(AsyncPostHogHook(bad, retry_policy=FAST_RETRY).list_runs(export["id"])))
    attempt(lambda: arun(AsyncPostHogHook(down, retry_policy=FAST_RETRY).list_runs(export["id"])))
    assert [type(e).__name__ for e in errors] == [
        "PostHogServerError",
        "PostHogAuthError",
        "PostHogNotFoundError",
        "PostHogTransportError",
        "PostHogValidationError",
        "PostHogAuthError",
        "PostHogTransportError",
    ]
    assert any("retrying" in r.getMessage() for r in caplog.records)  # the logs were captured

    captured = capfd.readouterr()
    shown = {
        "logs": caplog.text + "\n".join(str(r.args) for r in caplog.records),
        "stdout": captured.out,
        "stderr": captured.err,
        "errors": "\n".join(f"{e}\n{e!r}\n{e.args!r}" for e in errors),
        "hook": repr(hook) + repr(hook.settings) + repr(AsyncPostHogHook(good)),
        "requests": repr(emu.requests),
    }
    for key in (SECRET_KEY, wrong_key):
        for where, text in shown.items():
            assert key not in text, f"the API key leaked into {where}"
