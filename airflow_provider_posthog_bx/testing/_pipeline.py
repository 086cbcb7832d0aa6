"""Request pipeline, transport-free: route -> authenticate -> permissions -> throttle -> handler."""

from __future__ import annotations

from . import _errors
from ._auth import Throttle, authenticate, check_project, check_scope, find_key, fingerprint
from ._handlers import Ctx, create_backfill
from ._http import Request, Response, error_response, html_response, json_response
from ._routes import Route, match
from ._state import State

DJANGO_404_HTML = (
    '<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
    "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n"
    "</body>\n</html>\n"
)


def _catch_all() -> Response:
    """PostHog's catch-all ``^api.+`` view: no authentication, JSON 404."""
    return error_response(_errors.not_found("Endpoint not found."))


def _unrouted(state: State, route: Route) -> Response | None:
    """How a deployment that lacks this route answers it before authentication, if it does."""
    if route.handler is create_backfill:
        if state.legacy_backfill_route == "404":
            # An old/proxied deployment where the URL does not resolve: Django's HTML 404 page.
            return html_response(404, DJANGO_404_HTML)
        if state.legacy_backfill_route == "catch-all":
            # Before the backfills viewset existed the URL fell through to PostHog's catch-all.
            return _catch_all()
    return None


def handle(state: State, throttle: Throttle | None, request: Request) -> Response:
    """Run one request through PostHog's pipeline and return the response."""
    found = match(request.path, state.serves)
    if found is None:
        return _catch_all()
    method = request.method.upper()
    method = "GET" if method == "HEAD" else method  # Django/DRF answer HEAD like GET
    route = found.methods.get(method)
    early = _unrouted(state, route) if route is not None else None
    if early is not None:
        return early
    body = request.parsed_body()
    try:
        with state.lock:
            api_key = authenticate(state.keys, find_key(request.headers, body, request.query))
            team_id = state.project_id if found.project is None else found.project
            check_project(api_key, team_id, state.project_ids)
            if route is None:
                raise _errors.method_not_allowed(method)
            check_scope(api_key, route.scope)
        if throttle is not None:
            throttle.check(fingerprint(api_key.key), state.clock.seconds())
        with state.lock:
            now = state.tick()
            ctx = Ctx(
                state=state,
                export_id=found.export,
                sub_id=found.sub,
                team_id=team_id,
                method=method,
                path=request.path,
                query=request.query,
                body=body,
                base=request.base,
                now=now,
            )
            status, data = route.handler(ctx)
        return json_response(status, data)
    except _errors.ApiError as error:
        return error_response(error)
