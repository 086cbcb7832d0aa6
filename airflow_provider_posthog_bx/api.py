"""The PostHog batch-exports wire protocol, shared by the sync hook and the async triggers.

Pure functions and small dataclasses, no I/O: connection settings, request paths, paging,
error parsing and retry decisions. PostHog's rules about statuses, time, bounds, runs and logs
are in :mod:`airflow_provider_posthog_bx.core`. A transport sends an :class:`ApiRequest`, wraps
what came back in a :class:`Response` (or a :class:`TransportFailure`) and asks :func:`decide`
what to do.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from airflow_provider_posthog_bx.core.logs import PAGE_SIZE as MAX_LOG_LIMIT
from airflow_provider_posthog_bx.core.time import filter_bound
from airflow_provider_posthog_bx.exceptions import (
    PostHogAmbiguousRequestError,
    PostHogAPIError,
    PostHogAuthError,
    PostHogConcurrencyLimitError,
    PostHogConfigError,
    PostHogError,
    PostHogNotFoundError,
    PostHogRateLimitError,
    PostHogServerError,
    PostHogTransportError,
    PostHogValidationError,
)

DEFAULT_BASE_URL = "https://us.posthog.com"

CONCURRENCY_LIMIT_CODE = "too_many_concurrent_backfills"
THROTTLED_CODE = "throttled"

Params = Mapping[str, str | Sequence[str]]
# A time argument of a hook method: an aware datetime, a date or an ISO string (None: not given).
TimeArg = datetime | date | str | None


# --------------------------------------------------------------------------------------------
# Connection settings


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and as whom to call PostHog. The key is excluded from the repr."""

    base_url: str
    api_key: str = field(repr=False)
    project_id: int | str | None = None
    requests_per_minute: float | None = None


def base_url_from(
    host: str | None,
    port: int | None = None,
    schema: str | None = None,
    *,
    allow_insecure_http: bool = False,
) -> str:
    """Turn a connection's host field into an API base URL (no trailing slash).

    :param host: a full URL (``http://127.0.0.1:8123``), a bare host name (https assumed) or
        empty for PostHog US Cloud. PostHog's ingestion hosts (``us.i.posthog.com``) are
        refused: they do not serve this API.
    :param port: the connection's port field, used when the host has none.
    :param schema: ``http``/``https`` from a URI-style connection, used for a bare host name.
    :param allow_insecure_http: allow ``http://`` to a host that is not loopback (the
        connection's ``extra.allow_insecure_http``); otherwise refused, as the API key would
        cross the network in clear text.
    """
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        scheme = schema if schema in ("http", "https") else "https"
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostHogConfigError(
            f"PostHog connection host {host!r} is not usable; give a URL such as "
            "https://eu.posthog.com or http://127.0.0.1:8123, or a bare host name"
        )
    hostname = parts.hostname.rstrip(".").lower()
    if hostname.endswith(INGESTION_SUFFIX):
        app = INGESTION_APP_HOSTS.get(hostname, "https://us.posthog.com or https://eu.posthog.com")
        raise PostHogConfigError(
            f"PostHog connection host {host!r} is PostHog's ingestion host, which only takes "
            f"events and does not serve the batch-exports API; use the app host {app}"
        )
    if parts.scheme == "http" and not is_loopback(hostname) and not allow_insecure_http:
        raise PostHogConfigError(
            f"PostHog connection host {host!r} uses plain http to a host that is not loopback: "
            "the personal API key would cross the network in clear text. Use https://, or set "
            '"allow_insecure_http": true in the connection extra if the network path is trusted'
        )
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


# PostHog Cloud's ingestion hosts (events, flags) and the app host that serves the private API.
INGESTION_SUFFIX = ".i.posthog.com"
INGESTION_APP_HOSTS: Mapping[str, str] = {
    "us.i.posthog.com": "https://us.posthog.com",
    "us-assets.i.posthog.com": "https://us.posthog.com",
    "eu.i.posthog.com": "https://eu.posthog.com",
    "eu-assets.i.posthog.com": "https://eu.posthog.com",
}


def is_loopback(hostname: str) -> bool:
    """Whether a host name is this machine: ``localhost``, 127.0.0.0/8 or ``::1``."""
    name = hostname.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def parse_project_id(value: object, source: str) -> int | str | None:
    """Validate a project id (an integer, a digit string, or ``@current``)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise PostHogConfigError(f"{source} must be a PostHog project id (got {value!r})")
    if isinstance(value, int):
        if value < 1:
            raise PostHogConfigError(
                f"{source} must be a positive PostHog project id (got {value})"
            )
        return value
    text = str(value).strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    if text == "@current":
        return text
    raise PostHogConfigError(
        f"{source} must be a PostHog project id such as 12345 or '@current' (got {value!r})"
    )


# --------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True)
class ApiRequest:
    """One API call, independent of the transport.

    :param idempotent: whether re-sending after the request may have reached PostHog is safe.
        Requests that create remote work (a backfill, a run retry) are not.
    """

    method: str
    path: str
    params: Params = field(default_factory=dict)
    json: Any = None
    idempotent: bool = True

    def describe(self) -> str:
        return f"{self.method} {self.path}"


def project_path(project_id: int | str) -> str:
    return f"/api/projects/{quote(str(project_id), safe='@')}"


def batch_export_path(
    project_id: int | str, batch_export_id: str | None = None, *parts: str
) -> str:
    """Path of the batch-exports collection, one export, or one of its sub-resources."""
    segments = [project_path(project_id), "batch_exports"]
    if batch_export_id is not None:
        segments.append(_segment(batch_export_id, "batch_export_id"))
    segments.extend(parts)
    return "/".join(segments) + "/"


def _segment(value: str, name: str) -> str:
    text = str(value).strip()
    if not text or "/" in text or text in (".", ".."):
        raise PostHogConfigError(f"{name} must be a PostHog id (got {value!r})")
    return quote(text, safe="")


def list_batch_exports(project_id: int | str, offset: int = 0, limit: int = 100) -> ApiRequest:
    params = {"limit": str(limit), "offset": str(offset)}
    return ApiRequest("GET", batch_export_path(project_id), params)


def get_batch_export(project_id: int | str, batch_export_id: str) -> ApiRequest:
    return ApiRequest("GET", batch_export_path(project_id, batch_export_id))


def create_batch_export(project_id: int | str, body: Mapping[str, Any]) -> ApiRequest:
    return ApiRequest("POST", batch_export_path(project_id), json=dict(body), idempotent=False)


def update_batch_export(
    project_id: int | str, batch_export_id: str, body: Mapping[str, Any]
) -> ApiRequest:
    return ApiRequest("PATCH", batch_export_path(project_id, batch_export_id), json=dict(body))


def delete_batch_export(project_id: int | str, batch_export_id: str) -> ApiRequest:
    return ApiRequest("DELETE", batch_export_path(project_id, batch_export_id))


def pause_batch_export(project_id: int | str, batch_export_id: str) -> ApiRequest:
    # PostHog's pause is a no-op when already paused, so re-sending is safe.
    return ApiRequest("POST", batch_export_path(project_id, batch_export_id, "pause"))


def unpause_batch_export(
    project_id: int | str, batch_export_id: str, backfill: bool = False
) -> ApiRequest:
    # A repeated unpause is a no-op (no second backfill), so re-sending is safe.
    body = {"backfill": True} if backfill else None
    return ApiRequest("POST", batch_export_path(project_id, batch_export_id, "unpause"), json=body)


def create_backfill(
    project_id: int | str, batch_export_id: str, start_at: str, end_at: str
) -> ApiRequest:
    body = {"start_at": start_at, "end_at": end_at}
    path = batch_export_path(project_id, batch_export_id, "backfills")
    return ApiRequest("POST", path, json=body, idempotent=False)


def create_backfill_legacy(
    project_id: int | str, batch_export_id: str, start_at: str, end_at: str
) -> ApiRequest:
    """The deprecated ``POST .../backfill/`` action of older self-hosted PostHog."""
    body = {"start_at": start_at, "end_at": end_at}
    path = batch_export_path(project_id, batch_export_id, "backfill")
    return ApiRequest("POST", path, json=body, idempotent=False)


def list_backfills(
    project_id: int | str, batch_export_id: str, params: Params | None = None
) -> ApiRequest:
    path = batch_export_path(project_id, batch_export_id, "backfills")
    return ApiRequest("GET", path, dict(params or {}))


def get_backfill(project_id: int | str, batch_export_id: str, backfill_id: str) -> ApiRequest:
    backfill = _segment(backfill_id, "backfill_id")
    return ApiRequest("GET", batch_export_path(project_id, batch_export_id, "backfills", backfill))


def cancel_backfill(project_id: int | str, batch_export_id: str, backfill_id: str) -> ApiRequest:
    backfill = _segment(backfill_id, "backfill_id")
    path = batch_export_path(project_id, batch_export_id, "backfills", backfill, "cancel")
    return ApiRequest("POST", path)


def list_runs(
    project_id: int | str, batch_export_id: str, params: Params | None = None
) -> ApiRequest:
    path = batch_export_path(project_id, batch_export_id, "runs")
    return ApiRequest("GET", path, dict(params or {}))


def get_run(
    project_id: int | str, batch_export_id: str, run_id: str, params: Params | None = None
) -> ApiRequest:
    run = _segment(run_id, "run_id")
    path = batch_export_path(project_id, batch_export_id, "runs", run)
    return ApiRequest("GET", path, dict(params or {}))


def retry_run(project_id: int | str, batch_export_id: str, run_id: str) -> ApiRequest:
    run = _segment(run_id, "run_id")
    path = batch_export_path(project_id, batch_export_id, "runs", run, "retry")
    return ApiRequest("POST", path, idempotent=False)


def cancel_run(project_id: int | str, batch_export_id: str, run_id: str) -> ApiRequest:
    run = _segment(run_id, "run_id")
    return ApiRequest("POST", batch_export_path(project_id, batch_export_id, "runs", run, "cancel"))


def get_logs(
    project_id: int | str,
    batch_export_id: str,
    *,
    after: TimeArg = None,
    before: TimeArg = None,
    level: str | None = None,
    search: str | None = None,
    limit: int = 50,
) -> ApiRequest:
    """Logs of an export, newest first. ``after``/``before`` are exclusive bounds: aware
    datetimes, dates (00:00 UTC) or ISO strings with an offset (no relative strings)."""
    if not 1 <= limit <= MAX_LOG_LIMIT:
        raise PostHogConfigError(f"limit must be between 1 and {MAX_LOG_LIMIT} (got {limit})")
    bounds = (("after", filter_bound("after", after)), ("before", filter_bound("before", before)))
    params: dict[str, str] = {"limit": str(limit)}
    for name, value in (*bounds, ("level", level), ("search", search)):
        if value:
            params[name] = value
    return ApiRequest("GET", batch_export_path(project_id, batch_export_id, "logs"), params)


def backfill_id_from(body: Any, request: ApiRequest) -> str:
    """The ``backfill_id`` PostHog answers a backfill create (or a run retry) with."""
    backfill_id = body.get("backfill_id") if isinstance(body, dict) else None
    if not isinstance(backfill_id, str) or not backfill_id:
        raise PostHogTransportError(
            request.method,
            request.path,
            f"the answer has no backfill_id: {body!r}"[:300],
            sent=True,
        )
    return backfill_id


# Run filters that are instants; PostHog also takes relative strings (``-7d``) for them.
RUN_TIME_FILTERS = ("after", "before", "start", "end")


def run_filters(filters: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """Query parameters of a run listing (or ``get_run``): the time filters checked and
    written by :func:`~airflow_provider_posthog_bx.core.time.filter_bound` (a naive value is
    a :class:`~airflow_provider_posthog_bx.exceptions.PostHogInputError` naming the filter),
    the others as :func:`query_params` writes them."""
    checked = {
        name: filter_bound(name, value, relative=True) if name in RUN_TIME_FILTERS else value
        for name, value in filters.items()
    }
    return query_params(checked)


def query_params(filters: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """Query parameters from filter values: datetimes as ISO strings, lists repeated, None
    dropped."""
    return {name: _query_value(value) for name, value in filters.items() if value is not None}


def _query_value(value: Any) -> str | list[str]:
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(_query_value(item)) for item in value]
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(value)


def with_params(request: ApiRequest, params: Params) -> ApiRequest:
    """The same request with other query parameters (the next page of a listing)."""
    return ApiRequest(request.method, request.path, params, request.json, request.idempotent)


def next_page_params(page: Any) -> dict[str, list[str]] | None:
    """Query parameters of a page's ``next`` link, or None on the last page.

    Only the query string is kept: PostHog builds ``next`` from the request host, which behind a
    proxy may be an internal address, so the caller re-sends to its own base URL.
    """
    if not isinstance(page, dict):
        return None
    link = page.get("next")
    if not link or not isinstance(link, str):
        return None
    return parse_qs(urlsplit(link).query, keep_blank_values=True)


def page_results(page: Any, request: ApiRequest) -> list[dict[str, Any]]:
    """The ``results`` of a list page, or a clear error if the body has none."""
    results = page.get("results") if isinstance(page, dict) else None
    if not isinstance(results, list):
        raise PostHogTransportError(
            request.method, request.path, "the response is not a page with 'results'", sent=True
        )
    return results


# --------------------------------------------------------------------------------------------
# Responses and retry decisions


@dataclass(frozen=True)
class Response:
    """What a transport received: status, headers (case-insensitive mapping) and raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class TransportFailure:
    """The transport got no usable response.

    :param sent: whether the request may have reached PostHog (a read timeout or a dropped
        connection after sending), as opposed to a failure to connect (to PostHog or to the
        proxy, or a TLS handshake that failed).
    :param retryable: False when trying again cannot help (a certificate that is not
        trusted); :func:`decide` then fails at once.
    """

    reason: str
    sent: bool
    retryable: bool = True


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before re-sending a request.

    :param max_attempts: total tries of one request, the first included.
    :param backoff_base: seconds before the first retry; doubles each time, with jitter.
    :param backoff_max: longest backoff between two tries, in seconds.
    :param retry_after_max: cap on a server-given ``Retry-After``, in seconds.
    """

    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    retry_after_max: float = 120.0

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Jittered exponential backoff after the ``attempt``-th try (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * rng())


# Cancels run inside on_kill, which Airflow bounds at 30 s: few, short retries.
CANCEL_RETRY_POLICY = RetryPolicy(
    max_attempts=3, backoff_base=0.5, backoff_max=2.0, retry_after_max=5.0
)


@dataclass(frozen=True)
class Done:
    """Stop: the request succeeded with this parsed body (None for an empty body)."""

    data: Any


@dataclass(frozen=True)
class Retry:
    """Send the same request again after ``delay`` seconds."""

    delay: float
    reason: str

    def describe(self, request: ApiRequest, attempt: int, policy: RetryPolicy) -> str:
        """The log line for this retry of ``request`` after its ``attempt``-th try."""
        return (
            f"PostHog API {request.describe()}: {self.reason}; retrying in {self.delay:.1f} s "
            f"(attempt {attempt + 1} of {policy.max_attempts})"
        )


@dataclass(frozen=True)
class Fail:
    """Stop: raise this error."""

    error: PostHogError


Decision = Done | Retry | Fail

RETRYABLE_GATEWAY_STATUSES = frozenset({502, 503, 504})


def decide(
    request: ApiRequest,
    outcome: Response | TransportFailure,
    attempt: int,
    policy: RetryPolicy,
    *,
    now: datetime | None = None,
    rng: Callable[[], float] = random.random,
) -> Decision:
    """What to do after the ``attempt``-th try (1-based) of ``request`` ended in ``outcome``.

    Retried: failures to connect (nothing was sent); read timeouts, dropped connections and
    502/503/504 for idempotent requests; a throttled 429 for any request (PostHog did not
    process it), after its ``Retry-After``. Never retried: a failure marked not retryable
    (an untrusted certificate), redirects (not followed: they would carry the key elsewhere or
    drop the body), other 4xx, 500, and anything that may have created remote work — those
    become :class:`PostHogAmbiguousRequestError`.
    """
    can_retry = attempt < policy.max_attempts
    if isinstance(outcome, TransportFailure):
        if can_retry and outcome.retryable and (request.idempotent or not outcome.sent):
            return Retry(policy.backoff(attempt, rng), outcome.reason)
        error_type = PostHogTransportError
        if outcome.sent and not request.idempotent:
            error_type = PostHogAmbiguousRequestError
        reason = outcome.reason if attempt == 1 else f"{outcome.reason} (after {attempt} tries)"
        return Fail(error_type(request.method, request.path, reason, sent=outcome.sent))

    if 200 <= outcome.status < 300:
        try:
            return Done(_parse_body(outcome.body))
        except ValueError:
            reason = f"PostHog answered {outcome.status} with a body that is not valid JSON"
            if request.idempotent and can_retry:
                return Retry(policy.backoff(attempt, rng), reason)
            if attempt > 1:
                reason += f" (after {attempt} tries)"
            error_type = (
                PostHogTransportError if request.idempotent else PostHogAmbiguousRequestError
            )
            return Fail(error_type(request.method, request.path, reason, sent=True))

    if 300 <= outcome.status < 400:
        return Fail(redirect_error(request, outcome, attempts=attempt))
    error = api_error(request, outcome, attempts=attempt)
    if outcome.status == 429 and not isinstance(error, PostHogConcurrencyLimitError):
        if can_retry:
            wait = retry_after_seconds(outcome.headers.get("Retry-After"), now=now)
            delay = policy.backoff(attempt, rng) if wait is None else wait
            return Retry(min(delay, policy.retry_after_max), f"throttled: {error.detail}")
        return Fail(error)
    if outcome.status in RETRYABLE_GATEWAY_STATUSES and request.idempotent and can_retry:
        wait = retry_after_seconds(outcome.headers.get("Retry-After"), now=now)
        delay = policy.backoff(attempt, rng) if wait is None else min(wait, policy.retry_after_max)
        return Retry(delay, f"{outcome.status}: {error.detail}")
    if outcome.status >= 500 and not request.idempotent:
        # A proxy error or a crash after the work was queued: the caller must check.
        reason = f"it may have reached PostHog, which returned {outcome.status}: {error.detail}"
        return Fail(PostHogAmbiguousRequestError(request.method, request.path, reason, sent=True))
    return Fail(error)


def _parse_body(body: bytes) -> Any:
    if not body.strip():
        return None
    return json.loads(body)


def error_body(response: Response) -> dict[str, Any] | None:
    """PostHog's ``{type, code, detail, attr}`` error body, or None if the body is not one."""
    try:
        data = json.loads(response.body)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return data
    return None


_ERROR_TYPES: Mapping[int, type[PostHogAPIError]] = {
    400: PostHogValidationError,
    401: PostHogAuthError,
    403: PostHogAuthError,
    404: PostHogNotFoundError,
}


# A gateway answered for PostHog: it may have forwarded the request and lost the answer.
MAY_HAVE_FORWARDED_STATUSES = frozenset({502, 504})


def may_have_applied(outcome: Response | TransportFailure) -> bool:
    """Whether a try that ended in ``outcome`` (and is retried) may still have been processed
    by PostHog: a dropped connection or read timeout after sending, a 502 or a 504. A 503, a
    429 or a failure to connect was not."""
    if isinstance(outcome, TransportFailure):
        return outcome.sent
    return outcome.status in MAY_HAVE_FORWARDED_STATUSES


def noting_earlier(error: PostHogError, earlier_may_have_applied: bool) -> PostHogError:
    """``error``, marked when an earlier try of the request may have been processed."""
    if earlier_may_have_applied and isinstance(error, PostHogAPIError):
        error.earlier_may_have_applied = True
    return error


def api_error(request: ApiRequest, response: Response, attempts: int = 1) -> PostHogAPIError:
    """The typed error for an error response, keeping PostHog's detail, code and attr.

    :param attempts: how many times the request was sent (named in the message when > 1).
    """
    body = error_body(response)
    if body is not None:
        detail = body["detail"]
        code = body.get("code") if isinstance(body.get("code"), str) else None
        kind = body.get("type") if isinstance(body.get("type"), str) else None
        attr = body.get("attr") if isinstance(body.get("attr"), str) else None
    else:
        detail = _text_snippet(response.body) or f"HTTP {response.status} with no error body"
        code = kind = attr = None
    cls: type[PostHogAPIError]
    if response.status == 429:
        cls = (
            PostHogConcurrencyLimitError
            if code == CONCURRENCY_LIMIT_CODE
            else PostHogRateLimitError
        )
    elif response.status >= 500:
        cls = PostHogServerError
    else:
        cls = _ERROR_TYPES.get(response.status, PostHogAPIError)
    return cls(
        method=request.method,
        path=request.path,
        status=response.status,
        detail=detail,
        type=kind,
        code=code,
        attr=attr,
        attempts=attempts,
    )


def redirect_error(request: ApiRequest, response: Response, attempts: int = 1) -> PostHogAPIError:
    """The error for a 3xx: redirects are not followed, the connection's host must change."""
    location = response.headers.get("Location") or "(no Location header)"
    detail = (
        f"the server redirects to {_redact(location)[:200]}; redirects are not followed (they "
        "would send the API key to another address or drop the request body), so set the "
        "connection host to the address PostHog is served from"
    )
    return PostHogAPIError(
        method=request.method,
        path=request.path,
        status=response.status,
        detail=detail,
        attempts=attempts,
    )


def _text_snippet(body: bytes, limit: int = 200) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# PostHog's catch-all for unrouted /api/ paths answers a JSON 404 with this detail.
ENDPOINT_NOT_FOUND = "Endpoint not found."


def is_missing_route(error: PostHogAPIError) -> bool:
    """Whether an error means the server has no such route (an older PostHog), as opposed to
    PostHog saying the object is missing: a 405, a 404 without PostHog's error body (a proxy or
    Django page), or PostHog's own "Endpoint not found." catch-all."""
    if error.status == 405:
        return True
    return error.status == 404 and (error.type is None or error.detail == ENDPOINT_NOT_FOUND)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (whole seconds or an HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


# --------------------------------------------------------------------------------------------
# Transport failures both transports classify the same way


def exception_chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception it wraps (causes, contexts, exceptions among its args,
    urllib3's ``reason``), outermost first."""
    found: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None))
        pending.extend(e for e in (*linked, *current.args) if isinstance(e, BaseException))
    return found


_SSL_NOISE = re.compile(r"^\[[A-Z0-9_]+: [A-Z0-9_]+\]\s*|\s*\(_ssl\.c:\d+\)$")


def tls_failure(
    error: BaseException, base_url: str, *, connecting: bool = False
) -> TransportFailure | None:
    """The failure for a TLS error anywhere in ``error``'s chain, else None.

    A certificate PostHog's host presents that is not trusted fails the handshake, so nothing
    was sent, and trying again cannot help. Another TLS error is "not sent" when it happened
    while ``connecting`` or is a handshake refusal; a TLS stream cut short may have been after
    sending.
    """
    chain = exception_chain(error)
    host = urlsplit(base_url).hostname or base_url
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            why = cause.verify_message or _SSL_NOISE.sub("", str(cause))
            return TransportFailure(
                f"the TLS certificate of {host} was rejected (certificate verify failed: "
                f"{why}); nothing was sent. Use the host's real name, or trust the CA that "
                "signed it (REQUESTS_CA_BUNDLE for tasks, SSL_CERT_FILE for the triggerer)",
                sent=False,
                retryable=False,
            )
    for cause in chain:
        if isinstance(cause, ssl.SSLError):
            why = _SSL_NOISE.sub("", str(cause.strerror or cause)) or type(cause).__name__
            cut = isinstance(cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError))
            sent = cut and not connecting
            when = "was cut" if sent else "could not be set up"
            return TransportFailure(f"the TLS connection to {host} {when} ({why})", sent=sent)
    return None


def proxy_failure(error: BaseException, proxy: str | None, base_url: str) -> TransportFailure:
    """The failure for a proxy that could not be reached or refused the tunnel (nothing was
    sent to PostHog); the reason is kept."""
    chain = exception_chain(error)
    where = f"the proxy {_redact(proxy)}" if proxy else "the proxy"
    if any(isinstance(cause, ConnectionRefusedError) for cause in chain):
        why = f"{where} refused the connection"
    else:
        # The deepest message, e.g. "Tunnel connection failed: 407 Proxy Authentication Required"
        innermost = next((c for c in reversed(chain) if str(c).strip()), error)
        why = f"{where} failed: {_text_snippet(str(innermost).encode())}"
    return TransportFailure(f"could not reach {base_url} through {why}", sent=False)


def _redact(url: str) -> str:
    """A URL without its user and password (proxy URLs may carry them)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return parts._replace(netloc=netloc).geturl()
