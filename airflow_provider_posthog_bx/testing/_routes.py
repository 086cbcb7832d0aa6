"""The one route table: each endpoint is a row (method, path, required scope, handler).

Paths are relative to ``/api/{projects|environments}/{project_id}/batch_exports``; ``{export}``
and ``{sub}`` capture one path segment each; the trailing slash is optional everywhere (PostHog's
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


@dataclass(frozen=True)
class Route:
    """One endpoint: ``method`` on ``path`` needs ``scope`` and is answered by ``handler``."""

    method: str
    path: str
    scope: str
    handler: h.Handler
    feature: str | None = None


ROUTES: tuple[Route, ...] = (
    # batch exports
    Route("GET", "", READ, h.list_exports),
    Route("POST", "", WRITE, h.create_export),
    Route("GET", "/{export}", READ, h.retrieve_export),
    Route("PUT", "/{export}", WRITE, h.update_export),
    Route("PATCH", "/{export}", WRITE, h.update_export),
    Route("DELETE", "/{export}", WRITE, h.delete_export),
    Route("POST", "/{export}/pause", WRITE, h.pause),
    Route("POST", "/{export}/unpause", WRITE, h.unpause),
    Route("GET", "/{export}/logs", READ, h.export_logs),
    Route("POST", "/{export}/backfill", WRITE, h.legacy_backfill, LEGACY),
    # runs
    Route("GET", "/{export}/runs", READ, h.list_runs),
    Route("GET", "/{export}/runs/{sub}", READ, h.retrieve_run),
    Route("POST", "/{export}/runs/{sub}/retry", WRITE, h.retry_run),
    Route("POST", "/{export}/runs/{sub}/cancel", WRITE, h.cancel_run),
    Route("GET", "/{export}/runs/{sub}/logs", READ, h.run_logs),
    # backfills
    Route("GET", "/{export}/backfills", READ, h.list_backfills, BACKFILLS),
    Route("POST", "/{export}/backfills", WRITE, h.create_backfill, BACKFILLS),
    Route("GET", "/{export}/backfills/{sub}", READ, h.retrieve_backfill, BACKFILLS),
    Route("POST", "/{export}/backfills/{sub}/cancel", WRITE, h.cancel_backfill, BACKFILLS),
)

_PREFIX = r"^/api/(?:projects|environments)/(?P<project>\d+|@current)/batch_exports"


def _compile(path: str) -> re.Pattern[str]:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return re.compile(_PREFIX + regex + r"/?$")


def _group(routes: tuple[Route, ...]) -> list[tuple[re.Pattern[str], tuple[Route, ...]]]:
    by_path: dict[str, list[Route]] = {}
    for route in routes:
        by_path.setdefault(route.path, []).append(route)
    return [(_compile(path), tuple(rows)) for path, rows in by_path.items()]


_TABLE = _group(ROUTES)


@dataclass(frozen=True)
class Match:
    """A URL that resolved: its path parameters and the served rows by method.

    ``project`` is ``None`` for ``@current``.
    """

    project: int | None
    export: str | None
    sub: str | None
    methods: dict[str, Route]


def match(path: str, serves: Callable[[str], bool]) -> Match | None:
    """The rows for ``path`` (no query string) that the deployment serves; ``None`` = no route.

    :param serves: whether the emulated deployment has a ``Route.feature``.
    """
    for pattern, rows in _TABLE:
        found = pattern.match(path)
        if found is None:
            continue
        methods = {r.method: r for r in rows if r.feature is None or serves(r.feature)}
        if not methods:
            return None
        groups = found.groupdict()
        project = groups["project"]
        return Match(
            project=None if project == "@current" else int(project),
            export=groups.get("export"),
            sub=groups.get("sub"),
            methods=methods,
        )
    return None
