"""The one route table: each endpoint is a row (method, path, required scope, handler).

Paths are relative to ``/api/{projects|environments}/{project_id}/batch_exports`` (or, for
``ORGANIZATION`` rows, ``/api/organizations/{organization_id}/batch_exports``); ``{export}`` and
``{sub}`` capture one path segment each; the trailing slash is optional everywhere (PostHog's
``DefaultRouterPlusPlus``). A new endpoint is one row here plus its handler in ``_handlers``.

``feature`` marks rows that not every PostHog deployment has: ``BACKFILLS`` (the backfills
viewset, added in 2025) and ``LEGACY`` (the deprecated ``POST .../backfill/`` action, removed in
the newest code). The pipeline asks the state which features the emulated deployment serves; a
path none of whose rows are served falls through to PostHog's catch-all 404.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from . import _handlers as h
from ._auth import READ, WRITE

BACKFILLS = "backfills"
LEGACY = "legacy"


PROJECT = "project"
ORGANIZATION = "organization"


@dataclass(frozen=True)
class Route:
    """One endpoint: ``method`` on ``path`` needs ``scope`` and is answered by ``handler``.

    ``declared`` marks actions that declare ``required_scopes`` (``@action(...,
    required_scopes=[...])``): DRF sets those on the view for every method, so a wrong method
    there passes the scope check and gets 405; elsewhere a scoped key gets 403 first.
    ``level`` is the router the row hangs under: projects/environments or organizations.
    """

    method: str
    path: str
    scope: str
    handler: h.Handler
    feature: str | None = None
    declared: bool = False
    level: str = PROJECT


ROUTES: tuple[Route, ...] = (
    # list-level actions first: DRF's router tries them before the `{pk}` detail route
    Route("GET", "/test", READ, h.destination_test, declared=True),
    Route("POST", "/run_test_step_new", WRITE, h.run_test_step_new, declared=True),
    # batch exports
    Route("GET", "", READ, h.list_exports),
    Route("POST", "", WRITE, h.create_export),
    Route("GET", "/{export}", READ, h.retrieve_export),
    Route("PUT", "/{export}", WRITE, h.update_export),
    Route("PATCH", "/{export}", WRITE, h.update_export),
    Route("DELETE", "/{export}", WRITE, h.delete_export),
    Route("POST", "/{export}/pause", WRITE, h.pause, declared=True),
    Route("POST", "/{export}/unpause", WRITE, h.unpause, declared=True),
    Route("GET", "/{export}/logs", READ, h.export_logs),
    Route("POST", "/{export}/run_test_step", WRITE, h.run_test_step, declared=True),
    Route("POST", "/{export}/backfill", WRITE, h.legacy_backfill, LEGACY, declared=True),
    # runs
    Route("GET", "/{export}/runs", READ, h.list_runs),
    Route("GET", "/{export}/runs/{sub}", READ, h.retrieve_run),
    Route("POST", "/{export}/runs/{sub}/retry", WRITE, h.retry_run, declared=True),
    Route("POST", "/{export}/runs/{sub}/cancel", WRITE, h.cancel_run, declared=True),
    Route("GET", "/{export}/runs/{sub}/logs", READ, h.run_logs),
    # backfills
    Route("GET", "/{export}/backfills", READ, h.list_backfills, BACKFILLS),
    Route("POST", "/{export}/backfills", WRITE, h.create_backfill, BACKFILLS),
    Route("GET", "/{export}/backfills/{sub}", READ, h.retrieve_backfill, BACKFILLS),
    Route("POST", "/{export}/backfills/{sub}/cancel", WRITE, h.cancel_backfill, BACKFILLS, True),
    # the organization-level viewset (products/batch_exports/backend/routes.py): its list
    Route("GET", "", READ, h.list_organization_exports, level=ORGANIZATION),
)

_PREFIXES = {
    PROJECT: r"^/api/(?:projects|environments)/(?P<project>\d+|@current)/batch_exports",
    ORGANIZATION: r"^/api/organizations/(?P<organization>[^/]+)/batch_exports",
}


def _compile(level: str, path: str) -> re.Pattern[str]:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return re.compile(_PREFIXES[level] + regex + r"/?$")


def _group(routes: tuple[Route, ...]) -> list[tuple[re.Pattern[str], tuple[Route, ...]]]:
    by_path: dict[tuple[str, str], list[Route]] = {}
    for route in routes:
        by_path.setdefault((route.level, route.path), []).append(route)
    return [(_compile(*key), tuple(rows)) for key, rows in by_path.items()]


_TABLE = _group(ROUTES)


@dataclass(frozen=True)
class Match:
    """A URL that resolved: its path parameters and the served rows by method.

    ``project`` is ``None`` for ``@current`` and on organization routes, where
    ``organization`` holds the id from the path.
    """

    project: int | None
    organization: str | None
    export: str | None
    sub: str | None
    methods: dict[str, Route]
    declared_scope: str | None


def match(path: str, serves: Callable[[str], bool]) -> Match | None:
    """The rows for ``path`` (no query string) that the deployment serves; ``None`` = no route.

    :param serves: whether the emulated deployment has a ``Route.feature``.
    """
    for pattern, rows in _TABLE:
        found = pattern.match(path)
        if found is None:
            continue
        served = [r for r in rows if r.feature is None or serves(r.feature)]
        if not served:
            return None
        groups = found.groupdict()
        project = groups.get("project")
        return Match(
            project=None if project in (None, "@current") else int(project),
            organization=groups.get("organization"),
            export=groups.get("export"),
            sub=groups.get("sub"),
            methods={r.method: r for r in served},
            declared_scope=next((r.scope for r in served if r.declared), None),
        )
    return None
