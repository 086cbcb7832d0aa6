"""Request pipeline, transport-free: route -> authenticate -> permissions -> throttle -> handler."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from . import _errors
from ._auth import Throttle, authenticate, check_project, check_scope, find_key, fingerprint
from ._handlers import HANDLERS, Ctx, InvalidBody
from ._routing import match
from ._state import State

DJANGO_404_HTML = (
    '<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
    "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n"
    "</body>\n</html>\n"
)


@dataclass
class Request:
    """An HTTP request as the pipeline needs it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    raw_body: bytes
    base: str

    def parsed_body(self) -> object:
        """JSON (or form) body; ``None`` when empty; an ``InvalidBody`` marker when malformed."""
        if not self.raw_body.strip():
            return None
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        text = self.raw_body.decode("utf-8", errors="replace")
        if ctype == "application/x-www-form-urlencoded":
            return {k: v[-1] for k, v in parse_qs(text).items()}
        try:
            return json.loads(text)
        except ValueError as exc:
            return InvalidBody(str(exc))


@dataclass
class Response:
    """A response ready to be written; ``data`` is the JSON value (for the request log)."""

    status: int
    data: Any = None
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, data: object, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (``None`` data with 204 gives an empty body)."""
    if status == 204 or (data is None and status != 200):
        return Response(status, None, b"", None, dict(headers or {}))
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(status, data, body, "application/json", dict(headers or {}))


def error_response(error: _errors.ApiError) -> Response:
    """PostHog error body for ``error``."""
    return json_response(error.status, error.body(), error.headers)


def key_id_of(request: Request, body: object) -> str | None:
    """Fingerprint of the key the request presented, if any."""
    found = find_key(request.headers, body, request.query)
    return fingerprint(found[0]) if found else None


def handle(state: State, throttle: Throttle | None, request: Request) -> Response:
    """Run one request through PostHog's pipeline and return the response."""
    route = match(request.path)
    legacy = state.legacy_backfill_route
    if route is None or (route.action == "backfill" and legacy is None):
        # PostHog's catch-all `^api.+` view: no authentication, JSON 404.
        return error_response(_errors.not_found("Endpoint not found."))
    method = request.method.upper()
    method = "GET" if method == "HEAD" else method  # Django/DRF answer HEAD like GET
    if route.kind == "backfill_list" and method == "POST" and legacy == "404":
        # An old/proxied deployment where the URL does not resolve: Django's HTML 404 page.
        return Response(404, None, DJANGO_404_HTML.encode(), "text/html; charset=utf-8")
    if route.kind == "backfill_list" and method == "POST" and legacy == "catch-all":
        # Before the backfills viewset existed the URL fell through to PostHog's catch-all.
        return error_response(_errors.not_found("Endpoint not found."))
    body = request.parsed_body()
    try:
        with state.lock:
            now = state.tick()
            api_key = authenticate(state.keys, find_key(request.headers, body, request.query))
            team_id = state.project_id if route.project is None else route.project
            check_project(api_key, team_id, state.project_ids)
            methods = route.methods()
            if method not in methods:
                raise _errors.method_not_allowed(method)
            check_scope(api_key, methods[method])
        if throttle is not None:
            throttle.check(fingerprint(api_key.key), state.clock.seconds())
        if route.kind == "backfill_list" and method == "POST" and legacy == "405":
            raise _errors.method_not_allowed(method)
        with state.lock:
            now = state.tick()
            ctx = Ctx(
                state, route, team_id, method, request.path, request.query, body, request.base, now
            )
            status, data = HANDLERS[(route.kind, route.action, method)](ctx)
        return json_response(status, data)
    except _errors.ApiError as error:
        return error_response(error)
