"""HTTP nouns shared by the server and the pipeline: what a request is, what a handler returns."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from . import _errors


class InvalidBody:
    """Marker for a request body that failed to parse."""

    def __init__(self, message: str) -> None:
        self.message = message


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


def html_response(status: int, html: str) -> Response:
    """An HTML page (what Django or a proxy sends for URLs PostHog's API does not own)."""
    return Response(status, None, html.encode(), "text/html; charset=utf-8")
