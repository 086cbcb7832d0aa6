"""URL routing for the batch-exports API (trailing slash optional, like DefaultRouterPlusPlus)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from ._auth import READ, WRITE

_PREFIX = r"^/api/(?:projects|environments)/(?P<project>\d+|@current)/batch_exports"
_SEG = r"(?P<{}>[^/]+)"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(_PREFIX + tail + r"/?$"))
    for name, tail in [
        ("export_list", ""),
        ("export_detail", "/" + _SEG.format("export")),
        (
            "export_action",
            "/" + _SEG.format("export") + r"/(?P<action>pause|unpause|logs|backfill)",
        ),
        ("run_list", "/" + _SEG.format("export") + "/runs"),
        ("run_detail", "/" + _SEG.format("export") + "/runs/" + _SEG.format("sub")),
        (
            "run_action",
            "/"
            + _SEG.format("export")
            + "/runs/"
            + _SEG.format("sub")
            + r"/(?P<action>retry|cancel|logs)",
        ),
        ("backfill_list", "/" + _SEG.format("export") + "/backfills"),
        ("backfill_detail", "/" + _SEG.format("export") + "/backfills/" + _SEG.format("sub")),
        (
            "backfill_action",
            "/"
            + _SEG.format("export")
            + "/backfills/"
            + _SEG.format("sub")
            + r"/(?P<action>cancel)",
        ),
    ]
]

# (route kind, action) -> {method: required scope}
_METHODS: dict[tuple[str, str | None], dict[str, str]] = {
    ("export_list", None): {"GET": READ, "POST": WRITE},
    ("export_detail", None): {"GET": READ, "PUT": WRITE, "PATCH": WRITE, "DELETE": WRITE},
    ("export_action", "pause"): {"POST": WRITE},
    ("export_action", "unpause"): {"POST": WRITE},
    ("export_action", "logs"): {"GET": READ},
    ("export_action", "backfill"): {"POST": WRITE},
    ("run_list", None): {"GET": READ},
    ("run_detail", None): {"GET": READ},
    ("run_action", "retry"): {"POST": WRITE},
    ("run_action", "cancel"): {"POST": WRITE},
    ("run_action", "logs"): {"GET": READ},
    ("backfill_list", None): {"GET": READ, "POST": WRITE},
    ("backfill_detail", None): {"GET": READ},
    ("backfill_action", "cancel"): {"POST": WRITE},
}


@dataclass(frozen=True)
class Route:
    """A matched API route; ``project`` is ``None`` for ``@current``."""

    kind: str
    project: int | None
    export: str | None
    sub: str | None
    action: str | None

    def methods(self) -> dict[str, str]:
        """Allowed methods and the scope each needs."""
        return _METHODS[(self.kind, self.action)]


def match(path: str) -> Route | None:
    """The route for ``path`` (no query string), or ``None`` for an unknown URL."""
    for kind, pattern in _PATTERNS:
        found = pattern.match(path)
        if found:
            groups = found.groupdict()
            project = groups["project"]
            return Route(
                kind=kind,
                project=None if project == "@current" else int(project),
                export=groups.get("export"),
                sub=groups.get("sub"),
                action=groups.get("action"),
            )
    return None


def is_uuid(value: str | None) -> bool:
    """Whether a path segment parses as a UUID (malformed ids are 404, not 400, in PostHog)."""
    if value is None:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
