"""Unit tests of the sans-I/O core: connection settings, request builders, error parsing and
the retry decisions both transports follow (``api.decide``)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from airflow_provider_posthog_bx import api
from airflow_provider_posthog_bx._compat import AirflowFailException
from airflow_provider_posthog_bx.exceptions import (
    PostHogAmbiguousRequestError,
    PostHogAPIError,
    PostHogAuthError,
    PostHogConcurrencyLimitError,
    PostHogConfigError,
    PostHogNotFoundError,
    PostHogRateLimitError,
    PostHogServerError,
    PostHogTransportError,
    PostHogValidationError,
)

UTC = timezone.utc
EXPORT = "0190b7a4-1111-7000-8000-000000000001"
POLICY = api.RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=30.0, retry_after_max=120)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def get_request() -> api.ApiRequest:
    return api.get_batch_export(1, EXPORT)


def backfill_request() -> api.ApiRequest:
    return api.create_backfill(1, EXPORT, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")


def posthog_error(
    status: int,
    code: str,
    detail: str,
    type_: str,
    attr: str | None = None,
    headers: dict[str, str] | None = None,
) -> api.Response:
    body = {"type": type_, "code": code, "detail": detail, "attr": attr}
    return api.Response(status, headers or {}, json.dumps(body).encode())


def html(status: int, title: str) -> api.Response:
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    return api.Response(status, {}, page.encode())


def decide(
    request: api.ApiRequest, outcome: api.Response | api.TransportFailure, attempt: int = 1
) -> api.Decision:
    # rng 0.0: backoff is exactly half its ceiling, so delays are predictable.
    return api.decide(request, outcome, attempt, POLICY, now=NOW, rng=lambda: 0.0)


# ---------------------------------------------------------------------------------------------
# Connection settings


@pytest.mark.parametrize(
    ("host", "port", "schema", "expected"),
    [
        ("http://127.0.0.1:8123", None, None, "http://127.0.0.1:8123"),
        ("http://127.0.0.1:8123/", None, None, "http://127.0.0.1:8123"),
        ("https://eu.posthog.com", None, None, "https://eu.posthog.com"),
        ("https://posthog.example.com/base/", None, None, "https://posthog.example.com/base"),
        ("  https://eu.posthog.com  ", None, None, "https://eu.posthog.com"),
        ("eu.posthog.com", None, None, "https://eu.posthog.com"),
        ("posthog.internal", 8000, None, "https://posthog.internal:8000"),
        ("posthog.internal", None, "https", "https://posthog.internal"),
        # A URI connection's path ends up in schema; anything but http/https is not a scheme.
        ("posthog.internal", None, "posthog", "https://posthog.internal"),
        # The host's own port wins over the port field.
        ("http://127.0.0.1:8123", 9999, None, "http://127.0.0.1:8123"),
        ("http://127.0.0.1", 8123, None, "http://127.0.0.1:8123"),
        (None, None, None, "https://us.posthog.com"),
        ("", None, None, "https://us.posthog.com"),
        ("   ", 8000, "http", "https://us.posthog.com"),
    ],
)
def test_base_url_from(host, port, schema, expected):
    assert api.base_url_from(host, port, schema) == expected


def test_plain_http_to_another_host_needs_the_explicit_opt_in():
    with pytest.raises(PostHogConfigError, match="allow_insecure_http"):
        api.base_url_from("posthog.internal", 8000, "http")
    assert (
        api.base_url_from("posthog.internal", 8000, "http", allow_insecure_http=True)
        == "http://posthog.internal:8000"
    )


@pytest.mark.parametrize("host", ["ftp://eu.posthog.com", "http://", "https:///api"])
def test_base_url_from_rejects_unusable_hosts(host):
    with pytest.raises(PostHogConfigError, match="is not usable") as info:
        api.base_url_from(host)
    assert repr(host) in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12345, 12345),
        ("12345", 12345),
        (" 42 ", 42),
        ("@current", "@current"),
        (None, None),
        ("", None),
    ],
)
def test_parse_project_id(value, expected):
    assert api.parse_project_id(value, "project_id") == expected


@pytest.mark.parametrize("value", ["abc", "12a", "1.5", 1.5, True, False, "@Current", [1]])
def test_parse_project_id_rejects(value):
    with pytest.raises(PostHogConfigError) as info:
        api.parse_project_id(value, "posthog_default extra.project_id")
    message = str(info.value)
    assert message.startswith("posthog_default extra.project_id must be a PostHog project id")
    assert repr(value) in message


def test_connection_settings_repr_hides_key():
    settings = api.ConnectionSettings("https://eu.posthog.com", "phx_very_secret", 7, 120.0)
    assert "phx_very_secret" not in repr(settings)
    assert "https://eu.posthog.com" in repr(settings)


# ---------------------------------------------------------------------------------------------
# Request builders


def test_paths_of_every_request():
    base = f"/api/projects/1/batch_exports/{EXPORT}"
    cases = [
        (api.list_batch_exports(1), "GET", "/api/projects/1/batch_exports/", True),
        (api.get_batch_export(1, EXPORT), "GET", f"{base}/", True),
        (
            api.create_batch_export(1, {"name": "x"}),
            "POST",
            "/api/projects/1/batch_exports/",
            False,
        ),
        (api.update_batch_export(1, EXPORT, {"name": "y"}), "PATCH", f"{base}/", True),
        (api.delete_batch_export(1, EXPORT), "DELETE", f"{base}/", True),
        (api.pause_batch_export(1, EXPORT), "POST", f"{base}/pause/", True),
        (api.unpause_batch_export(1, EXPORT), "POST", f"{base}/unpause/", True),
        (backfill_request(), "POST", f"{base}/backfills/", False),
        (api.create_backfill_legacy(1, EXPORT, "a", "b"), "POST", f"{base}/backfill/", False),
        (api.list_backfills(1, EXPORT), "GET", f"{base}/backfills/", True),
        (api.get_backfill(1, EXPORT, "bf"), "GET", f"{base}/backfills/bf/", True),
        (api.cancel_backfill(1, EXPORT, "bf"), "POST", f"{base}/backfills/bf/cancel/", True),
        (api.list_runs(1, EXPORT), "GET", f"{base}/runs/", True),
        (api.get_run(1, EXPORT, "r1"), "GET", f"{base}/runs/r1/", True),
        (api.retry_run(1, EXPORT, "r1"), "POST", f"{base}/runs/r1/retry/", False),
        (api.cancel_run(1, EXPORT, "r1"), "POST", f"{base}/runs/r1/cancel/", True),
        (api.get_logs(1, EXPORT), "GET", f"{base}/logs/", True),
    ]
    for request, method, path, idempotent in cases:
        assert (request.method, request.path, request.idempotent) == (method, path, idempotent)
        assert request.describe() == f"{method} {path}"


def test_request_bodies_and_params():
    assert api.list_batch_exports(1, offset=200, limit=50).params == {
        "limit": "50",
        "offset": "200",
    }
    assert backfill_request().json == {
        "start_at": "2026-01-01T00:00:00Z",
        "end_at": "2026-01-02T00:00:00Z",
    }
    assert api.unpause_batch_export(1, EXPORT).json is None
    assert api.unpause_batch_export(1, EXPORT, backfill=True).json == {"backfill": True}
    assert api.get_run(1, EXPORT, "r1", {"after": "-30d"}).params == {"after": "-30d"}
    body = {"name": "x"}
    request = api.create_batch_export(1, body)
    body["name"] = "changed"
    assert request.json == {"name": "x"}  # the request keeps its own copy


def test_project_path_accepts_current_and_quotes_ids():
    assert api.project_path("@current") == "/api/projects/@current"
    assert api.get_backfill(1, EXPORT, "a b?c").path.endswith("/backfills/a%20b%3Fc/")


@pytest.mark.parametrize("bad", ["", "  ", "a/b", ".", ".."])
def test_ids_with_path_syntax_are_refused_before_sending(bad):
    with pytest.raises(PostHogConfigError, match="batch_export_id must be a PostHog id"):
        api.get_batch_export(1, bad)
    with pytest.raises(PostHogConfigError, match="run_id must be a PostHog id"):
        api.get_run(1, EXPORT, bad)
    with pytest.raises(PostHogConfigError, match="backfill_id must be a PostHog id"):
        api.cancel_backfill(1, EXPORT, bad)


def test_get_logs_params_and_limit_bounds():
    request = api.get_logs(
        1,
        EXPORT,
        after="2026-01-01T00:00:00Z",
        before="2026-01-02T00:00:00Z",
        level="ERROR",
        search="timeout",
        limit=500,
    )
    assert request.params == {
        "limit": "500",
        "after": "2026-01-01T00:00:00Z",
        "before": "2026-01-02T00:00:00Z",
        "level": "ERROR",
        "search": "timeout",
    }
    assert api.get_logs(1, EXPORT).params == {"limit": "50"}
    for limit in (0, 501, -1):
        with pytest.raises(
            PostHogConfigError, match=rf"limit must be between 1 and 500 \(got {limit}\)"
        ):
            api.get_logs(1, EXPORT, limit=limit)


def test_query_params():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    params = api.query_params(
        {
            "status": ["Failed", "Cancelled"],
            "after": when,
            "before": None,
            "ordering": "-created_at",
            "start": "-30d",
        }
    )
    assert params == {
        "status": ["Failed", "Cancelled"],
        "after": "2026-01-02T03:04:05+00:00",
        "ordering": "-created_at",
        "start": "-30d",
    }
    assert api.query_params({"status": ("Failed",)}) == {"status": ["Failed"]}


def test_next_page_params_and_with_params():
    page = {
        "next": "http://10.0.0.5:8000/api/projects/1/batch_exports/?limit=100&offset=100",
        "results": [],
    }
    params = api.next_page_params(page)
    assert params == {"limit": ["100"], "offset": ["100"]}
    request = api.with_params(api.list_batch_exports(1), params)
    # Only the query is taken from `next`: the path (and the caller's host) stay.
    assert request.path == "/api/projects/1/batch_exports/"
    assert request.params == params
    assert api.next_page_params({"next": None, "results": []}) is None
    assert api.next_page_params({"results": []}) is None
    assert api.next_page_params([1, 2]) is None
    cursor_page = {"next": "http://h/x/?cursor=abc%3D&status=Failed&status=Completed"}
    assert api.next_page_params(cursor_page) == {
        "cursor": ["abc="],
        "status": ["Failed", "Completed"],
    }


def test_page_results():
    request = api.list_runs(1, EXPORT)
    assert api.page_results({"results": [{"id": "a"}]}, request) == [{"id": "a"}]
    for bad in ({"detail": "x"}, None, [], {"results": "nope"}):
        with pytest.raises(PostHogTransportError, match="is not a page with 'results'") as info:
            api.page_results(bad, request)
        assert info.value.path == request.path


# ---------------------------------------------------------------------------------------------
# Error parsing


def test_api_error_keeps_posthog_fields_and_formats_the_message():
    response = posthog_error(
        400,
        "invalid_input",
        "The provided 'end_at' (2099-01-01T00:00:00+00:00) is in the future",
        "validation_error",
    )
    error = api.api_error(backfill_request(), response)
    assert type(error) is PostHogValidationError
    assert (error.status, error.code, error.type, error.attr, error.method, error.path) == (
        400,
        "invalid_input",
        "validation_error",
        None,
        "POST",
        f"/api/projects/1/batch_exports/{EXPORT}/backfills/",
    )
    assert error.detail == "The provided 'end_at' (2099-01-01T00:00:00+00:00) is in the future"
    assert str(error) == (
        f"PostHog API POST /api/projects/1/batch_exports/{EXPORT}/backfills/ returned 400 "
        "(invalid_input): The provided 'end_at' (2099-01-01T00:00:00+00:00) is in the future"
    )


def test_api_error_names_the_field_and_the_tries():
    response = posthog_error(
        400,
        "max_value",
        "Ensure this value is less than or equal to 6.",
        "validation_error",
        attr="offset_day",
    )
    error = api.api_error(get_request(), response, attempts=3)
    assert error.attr == "offset_day" and error.attempts == 3
    assert str(error).endswith(
        "returned 400 (max_value, attr=offset_day): Ensure this value is less than or equal to 6."
        " (after 3 tries)"
    )


@pytest.mark.parametrize(
    ("status", "code", "type_", "cls"),
    [
        (400, "invalid_input", "validation_error", PostHogValidationError),
        (401, "authentication_failed", "authentication_error", PostHogAuthError),
        (403, "permission_denied", "authentication_error", PostHogAuthError),
        (404, "not_found", "invalid_request", PostHogNotFoundError),
        (405, "method_not_allowed", "invalid_request", PostHogAPIError),
        (429, "throttled", "throttled_error", PostHogRateLimitError),
        (429, "too_many_concurrent_backfills", "server_error", PostHogConcurrencyLimitError),
        (500, "error", "server_error", PostHogServerError),
        (502, "error", "server_error", PostHogServerError),
    ],
)
def test_api_error_class_per_status(status, code, type_, cls):
    error = api.api_error(get_request(), posthog_error(status, code, "d", type_))
    assert type(error) is cls
    assert error.status == status and error.code == code


def test_fail_exceptions_are_the_ones_a_task_retry_cannot_fix():
    for cls in (PostHogValidationError, PostHogAuthError, PostHogNotFoundError, PostHogConfigError):
        assert issubclass(cls, AirflowFailException), cls
    for cls in (
        PostHogRateLimitError,
        PostHogConcurrencyLimitError,
        PostHogServerError,
        PostHogTransportError,
        PostHogAmbiguousRequestError,
    ):
        assert not issubclass(cls, AirflowFailException), cls


def test_api_error_without_posthog_body():
    error = api.api_error(get_request(), html(502, "502 Bad Gateway"))
    assert type(error) is PostHogServerError
    assert error.code is None and error.type is None
    assert error.detail == (
        "<html><head><title>502 Bad Gateway</title></head>"
        "<body><h1>502 Bad Gateway</h1></body></html>"
    )
    assert "returned 502 (no error code)" in str(error)
    empty = api.api_error(get_request(), api.Response(503, {}, b""))
    assert empty.detail == "HTTP 503 with no error body"
    long = api.api_error(get_request(), api.Response(502, {}, b"x" * 1000))
    assert len(long.detail) == 200 and long.detail.endswith("…")
    # JSON that is not PostHog's error shape is treated as text.
    odd = api.api_error(get_request(), api.Response(400, {}, b'{"error": "nope"}'))
    assert odd.detail == '{"error": "nope"}' and odd.code is None


def test_is_missing_route():
    request = backfill_request()
    assert api.is_missing_route(
        api.api_error(
            request,
            posthog_error(
                405, "method_not_allowed", 'Method "POST" not allowed.', "invalid_request"
            ),
        )
    )
    assert api.is_missing_route(api.api_error(request, html(404, "Not Found")))
    # PostHog's own 404 (the export does not exist) is not a missing route.
    assert not api.is_missing_route(
        api.api_error(
            request, posthog_error(404, "not_found", "BatchExport not found.", "invalid_request")
        )
    )
    assert not api.is_missing_route(
        api.api_error(request, posthog_error(400, "invalid_input", "x", "validation_error"))
    )


# ---------------------------------------------------------------------------------------------
# Retry-After and backoff


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), (" 2.5 ", 2.5), ("0", 0.0), ("-3", 0.0), (None, None), ("soon", None), ("", None)],
)
def test_retry_after_seconds(value, expected):
    assert api.retry_after_seconds(value, now=NOW) == expected


def test_retry_after_http_date():
    later = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert later == "Sun, 01 Mar 2026 12:00:30 GMT"
    assert api.retry_after_seconds(later, now=NOW) == 30.0
    earlier = format_datetime(NOW - timedelta(minutes=5), usegmt=True)
    assert api.retry_after_seconds(earlier, now=NOW) == 0.0
    # A date without a zone is read as UTC.
    assert api.retry_after_seconds("Sun, 01 Mar 2026 12:01:00", now=NOW) == 60.0


def test_backoff_doubles_with_jitter_and_is_capped():
    policy = api.RetryPolicy(backoff_base=1.0, backoff_max=10.0)
    assert [policy.backoff(n, rng=lambda: 1.0) for n in (1, 2, 3, 4, 5, 6)] == [
        1.0,
        2.0,
        4.0,
        8.0,
        10.0,
        10.0,
    ]
    assert [policy.backoff(n, rng=lambda: 0.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    defaults = api.RetryPolicy()
    assert (
        defaults.max_attempts,
        defaults.backoff_base,
        defaults.backoff_max,
        defaults.retry_after_max,
    ) == (5, 1.0, 30.0, 120.0)


# ---------------------------------------------------------------------------------------------
# decide()


def test_success_bodies():
    assert decide(get_request(), api.Response(200, {}, b'{"id": "x"}')) == api.Done({"id": "x"})
    assert decide(backfill_request(), api.Response(201, {}, b'{"backfill_id": "b"}')) == api.Done(
        {"backfill_id": "b"}
    )
    assert decide(api.delete_batch_export(1, EXPORT), api.Response(204, {}, b"")) == api.Done(None)


def test_malformed_json_is_retried_for_reads_only():
    bad = api.Response(200, {}, b'{"results": [{"unterminated')
    retry = decide(get_request(), bad, attempt=1)
    assert isinstance(retry, api.Retry) and retry.delay == 0.5
    assert "not valid JSON" in retry.reason
    last = decide(get_request(), bad, attempt=3)
    assert isinstance(last, api.Fail) and type(last.error) is PostHogTransportError
    assert str(last.error) == (
        f"PostHog API GET /api/projects/1/batch_exports/{EXPORT}/ failed: PostHog answered 200 "
        "with a body that is not valid JSON (after 3 tries)"
    )
    created = decide(backfill_request(), api.Response(201, {}, b"<html>"), attempt=1)
    assert isinstance(created, api.Fail) and type(created.error) is PostHogAmbiguousRequestError
    assert created.error.sent is True


def test_connect_failures_are_retried_for_any_request():
    refused = api.TransportFailure("could not connect to http://127.0.0.1:1", sent=False)
    for request in (get_request(), backfill_request()):
        decision = decide(request, refused, attempt=2)
        assert decision == api.Retry(1.0, "could not connect to http://127.0.0.1:1")
    last = decide(backfill_request(), refused, attempt=3)
    assert isinstance(last, api.Fail) and type(last.error) is PostHogTransportError
    assert last.error.sent is False
    assert str(last.error).endswith("could not connect to http://127.0.0.1:1 (after 3 tries)")


def test_failures_after_sending_are_retried_only_when_idempotent():
    lost = api.TransportFailure("timed out waiting for PostHog's answer", sent=True)
    assert isinstance(decide(get_request(), lost), api.Retry)
    assert isinstance(decide(api.pause_batch_export(1, EXPORT), lost), api.Retry)
    for request in (
        backfill_request(),
        api.retry_run(1, EXPORT, "r"),
        api.create_batch_export(1, {}),
    ):
        decision = decide(request, lost, attempt=1)
        assert isinstance(decision, api.Fail)
        assert type(decision.error) is PostHogAmbiguousRequestError
        assert str(decision.error) == (
            f"PostHog API POST {request.path} failed: timed out waiting for PostHog's answer"
        )
    exhausted = decide(get_request(), lost, attempt=3)
    assert isinstance(exhausted, api.Fail) and type(exhausted.error) is PostHogTransportError
    assert "(after 3 tries)" in str(exhausted.error)


def test_throttled_429_waits_retry_after_for_any_request():
    throttled = posthog_error(
        429,
        "throttled",
        "Request was throttled. Expected available in 7 seconds.",
        "throttled_error",
        headers={"Retry-After": "7"},
    )
    for request in (get_request(), backfill_request()):
        decision = decide(request, throttled)
        assert decision == api.Retry(
            7.0, "throttled: Request was throttled. Expected available in 7 seconds."
        )
    last = decide(get_request(), throttled, attempt=3)
    assert isinstance(last, api.Fail) and type(last.error) is PostHogRateLimitError
    assert str(last.error).endswith("(after 3 tries)")


def test_throttled_429_retry_after_forms():
    def throttled(header: str | None) -> api.Response:
        return posthog_error(
            429,
            "throttled",
            "t",
            "throttled_error",
            headers={"Retry-After": header} if header else {},
        )

    assert decide(get_request(), throttled("100000")).delay == 120.0  # capped
    http_date = format_datetime(NOW + timedelta(seconds=42), usegmt=True)
    assert decide(get_request(), throttled(http_date)).delay == 42.0
    far = format_datetime(NOW + timedelta(hours=2), usegmt=True)
    assert decide(get_request(), throttled(far)).delay == 120.0
    assert decide(get_request(), throttled(None), attempt=2).delay == 1.0  # backoff instead


def test_concurrency_429_is_not_retried():
    busy = posthog_error(
        429,
        "too_many_concurrent_backfills",
        "This team already has 5 batch export backfills running.",
        "server_error",
    )
    decision = decide(backfill_request(), busy)
    assert isinstance(decision, api.Fail)
    assert type(decision.error) is PostHogConcurrencyLimitError
    assert decision.error.code == "too_many_concurrent_backfills"


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_for_reads_and_ambiguous_for_creates(status):
    outcome = html(status, f"{status} Gateway")
    retry = decide(get_request(), outcome, attempt=1)
    assert isinstance(retry, api.Retry) and retry.delay == 0.5
    assert retry.reason.startswith(f"{status}: ")
    last = decide(get_request(), outcome, attempt=3)
    assert isinstance(last, api.Fail) and type(last.error) is PostHogServerError
    assert last.error.status == status and last.error.attempts == 3
    create = decide(backfill_request(), outcome, attempt=1)
    assert isinstance(create, api.Fail) and type(create.error) is PostHogAmbiguousRequestError
    assert f"returned {status}" in str(create.error)


def test_gateway_retry_after_is_honoured_and_capped():
    soon = api.Response(503, {"Retry-After": "3"}, b"")
    assert decide(get_request(), soon).delay == 3.0
    later = api.Response(503, {"Retry-After": "9999"}, b"")
    assert decide(get_request(), later).delay == 120.0


def test_500_is_never_retried():
    crash = posthog_error(500, "error", "A server error occurred.", "server_error")
    decision = decide(get_request(), crash)
    assert isinstance(decision, api.Fail) and type(decision.error) is PostHogServerError
    created = decide(backfill_request(), crash)
    assert isinstance(created, api.Fail) and type(created.error) is PostHogAmbiguousRequestError


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, PostHogValidationError),
        (401, PostHogAuthError),
        (403, PostHogAuthError),
        (404, PostHogNotFoundError),
    ],
)
def test_client_errors_are_never_retried(status, cls):
    outcome = posthog_error(status, "c", "d", "t")
    for request in (get_request(), backfill_request()):
        decision = decide(request, outcome, attempt=1)
        assert isinstance(decision, api.Fail) and type(decision.error) is cls
        assert str(decision.error) == f"PostHog API {request.describe()} returned {status} (c): d"


def test_errors_survive_pickling():
    import pickle

    from airflow_provider_posthog_bx.exceptions import (
        PostHogAmbiguousRequestError,
        PostHogInputError,
        PostHogNotFoundError,
    )

    errors = [
        PostHogNotFoundError(
            method="GET", path="/x/", status=404, detail="Not found.", code="not_found", attempts=2
        ),
        PostHogNotFoundError(
            method="DELETE",
            path="/x/",
            status=404,
            detail="Not found.",
            attempts=2,
            earlier_may_have_applied=True,
        ),
        PostHogAmbiguousRequestError("POST", "/y/", "the connection was closed", sent=True),
        PostHogInputError("start_at", "soon", "is not a valid ISO datetime", "pass an ISO string"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert copy.__dict__ == error.__dict__


def test_retry_log_line_names_request_reason_delay_and_attempt():
    request = api.get_backfill(1, "exp", "bf")
    line = api.Retry(2.5, "503: Service Unavailable").describe(request, 1, api.RetryPolicy())
    assert line == (
        "PostHog API GET /api/projects/1/batch_exports/exp/backfills/bf/: 503: Service "
        "Unavailable; retrying in 2.5 s (attempt 2 of 5)"
    )


def test_which_retried_outcomes_may_have_been_processed():
    # The rule a DELETE's later 404 depends on: only a try whose answer may have been lost.
    assert api.may_have_applied(api.TransportFailure("read timeout", sent=True))
    assert not api.may_have_applied(api.TransportFailure("could not connect", sent=False))
    for status, maybe in ((502, True), (504, True), (503, False), (429, False)):
        assert api.may_have_applied(api.Response(status, {}, b"")) is maybe
    request = api.delete_batch_export(1, "exp")
    error = api.api_error(request, api.Response(404, {}, b'{"detail": "Not found."}'))
    assert not api.noting_earlier(error, False).earlier_may_have_applied
    assert api.noting_earlier(error, True).earlier_may_have_applied
