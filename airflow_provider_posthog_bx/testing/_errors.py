"""PostHog-style API errors (drf-exceptions-hog body: type, code, detail, attr)."""

from __future__ import annotations

import math
from typing import Any


class ApiError(Exception):
    """An error response with PostHog's flat error body.

    :param status: HTTP status code.
    :param type_: ``type`` field (validation_error, authentication_error, ...).
    :param code: ``code`` field.
    :param detail: ``detail`` field, the single human message.
    :param attr: field path for field errors, ``None`` otherwise.
    :param headers: extra response headers (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        type_: str,
        code: str,
        detail: str,
        attr: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.type = type_
        self.code = code
        self.detail = detail
        self.attr = attr
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """Return the JSON body PostHog sends for this error."""
        return {"type": self.type, "code": self.code, "detail": self.detail, "attr": self.attr}


def validation(detail: str, attr: str | None = None, code: str = "invalid_input") -> ApiError:
    """400 validation error; ``attr`` set for field errors, ``None`` for non-field errors."""
    return ApiError(400, "validation_error", code, detail, attr)


def not_found(detail: str = "Not found.") -> ApiError:
    """404 as DRF's NotFound renders it."""
    return ApiError(404, "invalid_request", "not_found", detail)


def not_authenticated() -> ApiError:
    """401 when no credentials were sent.

    No ``WWW-Authenticate`` header: drf-exceptions-hog builds a new ``Response`` from the body
    (``exceptions_hog/handler.py``) and never copies DRF's ``auth_header`` onto it.
    """
    return ApiError(
        401,
        "authentication_error",
        "not_authenticated",
        "Authentication credentials were not provided.",
    )


def authentication_failed(where: str) -> ApiError:
    """401 for an unknown or revoked personal API key found in ``where``."""
    return ApiError(
        401,
        "authentication_error",
        "authentication_failed",
        f"Personal API key found in request {where} is invalid.",
    )


def permission_denied(detail: str) -> ApiError:
    """403 PermissionDenied (exceptions-hog types it ``authentication_error``)."""
    return ApiError(403, "authentication_error", "permission_denied", detail)


def no_personal_api_key_access() -> ApiError:
    """403 for a scoped key on a method the route has no action for (``posthog/permissions.py``).

    ``APIScopePermission`` runs before DRF's method dispatch; with no action (so no scope) for
    the method, a key with scopes is refused before the 405 could be raised.
    """
    return permission_denied("This action does not support Personal API Key access")


def method_not_allowed(method: str) -> ApiError:
    """405 for a method the route does not support."""
    return ApiError(405, "invalid_request", "method_not_allowed", f'Method "{method}" not allowed.')


def parse_error(message: str) -> ApiError:
    """400 for a body that is not valid JSON."""
    return ApiError(400, "invalid_request", "parse_error", f"JSON parse error - {message}")


def throttled(wait_seconds: float) -> ApiError:
    """429 from DRF throttling, with ``Retry-After`` in whole seconds (at least 1)."""
    wait = max(1, math.ceil(wait_seconds))
    unit = "second" if wait == 1 else "seconds"  # DRF uses ngettext: singular for 1
    return ApiError(
        429,
        "throttled_error",
        "throttled",
        f"Request was throttled. Expected available in {wait} {unit}.",
        headers={"Retry-After": str(wait)},
    )


def too_many_backfills(limit: int) -> ApiError:
    """429 from the per-team backfill cap: typed ``server_error`` and no ``Retry-After``."""
    return ApiError(
        429,
        "server_error",
        "too_many_concurrent_backfills",
        f"This team already has {limit} batch export backfills running. "
        "Wait for some to finish or cancel them before creating more.",
    )


def server_error() -> ApiError:
    """500 as exceptions-hog renders an unhandled exception."""
    return ApiError(500, "server_error", "error", "A server error occurred.")


def for_status(status: int) -> ApiError:
    """A plausible PostHog error for an arbitrary status (used by injected faults)."""
    if status == 400:
        return validation("Bad request.")
    if status == 401:
        return authentication_failed("Authorization header")
    if status == 403:
        return permission_denied("You do not have permission to perform this action.")
    if status == 404:
        return not_found()
    if status == 405:
        return method_not_allowed("GET")
    if status == 429:
        return ApiError(429, "throttled_error", "throttled", "Request was throttled.")
    if 400 <= status < 500:
        return ApiError(status, "invalid_request", "error", "Request failed.")
    return server_error()
