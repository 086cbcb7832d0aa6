"""Request pipeline, transport-free: route -> authenticate -> permissions -> throttle -> handler."""

from __future__ import annotations

from typing import NoReturn

from . import _errors
from ._auth import (
    Throttle,
    authenticate,
    check_organization,
    check_project,
    check_scope,
    find_key,
    fingerprint,
)
from ._handlers import Ctx, create_backfill
from ._http import Request, Response, error_response, html_response, json_response
from ._model import ApiKey
from ._routes import Match, Route, match
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


def _no_route_for_method(api_key: ApiKey, found: Match, method: str) -> NoReturn:
    """Raise what PostHog answers for a method the URL has no action for.

    ``APIScopePermission`` (``posthog/permissions.py``) runs before DRF dispatches on the
    method. An action that declares ``required_scopes`` has them on the view whatever the
    method, so the scope check passes (or fails) and dispatch answers 405; anywhere else the
    view has no action, so no scope: a scoped key (even ``*``) gets 403, and only a legacy
    key without scopes reaches the 405.
    """
    if api_key.scopes:
        if found.declared_scope is None:
            raise _errors.no_personal_api_key_access()
        check_scope(api_key, found.declared_scope)
    raise _errors.method_not_allowed(method)


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
            if found.organization is not None:
                check_organization(api_key, found.organization, state.organization_id)
                team_id = state.project_id
            else:
                team_id = state.project_id if found.project is None else found.project
                check_project(api_key, team_id, state.project_ids)
            if route is None:
                _no_route_for_method(api_key, found, method)
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
                organization=found.organization,
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
