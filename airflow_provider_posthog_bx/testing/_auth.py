"""Personal API key authentication, scope checks and DRF-style throttling."""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Mapping

from . import _errors
from ._model import ApiKey

READ = "batch_export:read"
WRITE = "batch_export:write"
# BurstRateThrottle 480/minute and SustainedRateThrottle 4800/hour (posthog/rate_limit.py,
# DEFAULT_THROTTLE_CLASSES in posthog/settings/web.py), per personal API key; on in Cloud.
POSTHOG_RATE_LIMIT = (480, 4800)


def fingerprint(key: str) -> str:
    """Short non-reversible id of a key for the request log (never the key itself)."""
    prefix = key[:4] if key[:4] in ("phx_", "pha_", "phc_", "phs_") else "key_"
    return f"{prefix}…{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def find_key(
    headers: Mapping[str, str], body: object, query: Mapping[str, list[str]]
) -> tuple[str, str] | None:
    """The presented key and where it was found (PostHog order: header, body, query string)."""
    auth = headers.get("Authorization", "") or headers.get("authorization", "")
    scheme, _, token = auth.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), "Authorization header"
    if isinstance(body, dict) and isinstance(body.get("personal_api_key"), str):
        return body["personal_api_key"], "body"
    values = query.get("personal_api_key")
    if values:
        return values[0], "query string"
    return None


def authenticate(keys: Mapping[str, ApiKey], found: tuple[str, str] | None) -> ApiKey:
    """The active key for ``found``; raises 401 errors exactly as PostHog words them."""
    if found is None:
        raise _errors.not_authenticated()
    key, where = found
    api_key = keys.get(key)
    if api_key is None or api_key.revoked:
        raise _errors.authentication_failed(where)
    return api_key


def check_project(api_key: ApiKey, project_id: int, known_projects: tuple[int, ...]) -> None:
    """403 when the key is scoped to other projects or the project is not in the organization."""
    if api_key.project_ids is not None and project_id not in api_key.project_ids:
        raise _errors.permission_denied(
            f"API key does not have access to the requested project: ID {project_id}."
        )
    if project_id not in known_projects:
        # posthog/api/routing.py, TeamAndOrgViewSetMixin.team: Team.DoesNotExist -> NotFound.
        # (403 "You don't have access to the project." is for another organization's project.)
        raise _errors.not_found("Project not found.")


def check_organization(api_key: ApiKey, organization_id: str, known: str) -> None:
    """The checks of an organization-level route (``/api/organizations/{id}/...``)."""
    if api_key.project_ids is not None:
        raise _errors.permission_denied(
            "API keys with scoped projects are only supported on project-based endpoints."
        )
    if organization_id != known:
        raise _errors.not_found("Organization not found.")


def check_scope(api_key: ApiKey, required: str) -> None:
    """403 unless the key's scopes grant ``required`` (write implies read, ``*`` everything)."""
    scopes = api_key.scopes
    if not scopes or "*" in scopes or required in scopes:
        return  # legacy keys with an empty scope list are unrestricted
    if required == READ and WRITE in scopes:
        return
    raise _errors.permission_denied(f"API key missing required scope '{required}'")


class Throttle:
    """PostHog's BurstRateThrottle + SustainedRateThrottle, per API key, on the emulator clock.

    :param burst_per_minute: requests allowed per rolling 60 s.
    :param sustained_per_hour: requests allowed per rolling 3600 s.
    """

    def __init__(self, burst_per_minute: int, sustained_per_hour: int) -> None:
        self._rates = ((burst_per_minute, 60.0), (sustained_per_hour, 3600.0))
        self._history: dict[tuple[str, int], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str, now: float) -> None:
        """Record the request or raise 429 with the longest wait, as DRF's ``check_throttles``."""
        waits: list[float] = []
        with self._lock:
            for index, (limit, duration) in enumerate(self._rates):
                history = self._history.setdefault((key_id, index), deque())
                while history and history[0] <= now - duration:
                    history.popleft()
                if len(history) >= limit:
                    remaining = duration - (now - history[0]) if history else duration
                    available = limit - len(history) + 1
                    waits.append(remaining / available if available > 0 else duration)
                else:
                    history.append(now)
        if waits:
            raise _errors.throttled(max(waits))
