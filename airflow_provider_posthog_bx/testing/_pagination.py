"""DRF pagination envelopes: limit/offset (with ``count``) and opaque cursors (without)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import urlencode

from . import _errors

UTC = timezone.utc

T = TypeVar("T")
SortKey = tuple[datetime, str]
_MIN = datetime.min.replace(tzinfo=UTC)


def url(base: str, path: str, query: dict[str, list[str]], updates: dict[str, str | None]) -> str:
    """Absolute URL for ``path`` with ``query`` modified by ``updates`` (``None`` removes)."""
    merged = {k: list(v) for k, v in query.items()}
    for key, value in updates.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = [value]
    qs = urlencode([(k, v) for k, vs in merged.items() for v in vs])
    return f"{base}{path}" + (f"?{qs}" if qs else "")


def _non_negative(query: dict[str, list[str]], name: str, default: int, strict: bool) -> int:
    raw = (query.get(name) or [""])[0]
    try:
        value = int(raw)
    except ValueError:
        return default
    if value < 0 or (strict and value == 0):
        return default
    return value


def limit_offset(
    items: Sequence[Any],
    base: str,
    path: str,
    query: dict[str, list[str]],
    default_limit: int = 100,
) -> dict[str, Any]:
    """DRF LimitOffsetPagination: ``{"count", "next", "previous", "results"}``."""
    limit = _non_negative(query, "limit", default_limit, strict=True)
    offset = _non_negative(query, "offset", 0, strict=False)
    count = len(items)
    nxt = None
    if offset + limit < count:
        nxt = url(base, path, query, {"limit": str(limit), "offset": str(offset + limit)})
    prev = None
    if offset > 0:
        back = offset - limit
        prev = url(
            base, path, query, {"limit": str(limit), "offset": str(back) if back > 0 else None}
        )
    return {
        "count": count,
        "next": nxt,
        "previous": prev,
        "results": list(items[offset : offset + limit]),
    }


def _encode(position: SortKey, reverse: bool) -> str:
    raw = json.dumps({"p": [position[0].isoformat(), position[1]], "r": int(reverse)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(token: str) -> tuple[SortKey, bool]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        stamp, ident = data["p"]
        return (datetime.fromisoformat(stamp), str(ident)), bool(data["r"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise _errors.not_found("Invalid cursor") from None


def cursor_page(
    items: Sequence[T],
    key: Callable[[T], tuple[datetime | None, str]],
    descending: bool,
    base: str,
    path: str,
    query: dict[str, list[str]],
    page_size: int,
) -> tuple[list[T], str | None, str | None]:
    """DRF CursorPagination by position: (page, next URL, previous URL).

    The cursor holds the sort position of the page edge, so rows created between page
    fetches neither repeat nor go missing. It is opaque to clients.
    """

    def sort_key(item: T) -> SortKey:
        stamp, ident = key(item)
        return (stamp or _MIN, ident)

    ordered = sorted(items, key=sort_key, reverse=descending)
    token = (query.get("cursor") or [""])[0]
    if not token:
        page = ordered[:page_size]
        has_next, has_prev = len(ordered) > page_size, False
    else:
        position, reverse = _decode(token)

        def after(item: T) -> bool:
            return sort_key(item) < position if descending else sort_key(item) > position

        if not reverse:
            rest = [i for i in ordered if after(i)]
            page, has_next, has_prev = rest[:page_size], len(rest) > page_size, True
        else:
            before = [i for i in ordered if not after(i) and sort_key(i) != position]
            page, has_next, has_prev = before[-page_size:], True, len(before) > page_size
    nxt = prev = None
    if page and has_next:
        nxt = url(base, path, query, {"cursor": _encode(sort_key(page[-1]), False)})
    if page and has_prev:
        prev = url(base, path, query, {"cursor": _encode(sort_key(page[0]), True)})
    return page, nxt, prev
