"""The request log: what clients sent, with keys replaced by fingerprints."""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._auth import find_key, fingerprint


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received (``status`` 0 while in flight or when the connection was dropped).

    ``key_id`` is a short fingerprint of the presented API key, never the key itself.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int
    key_id: str | None


def redact(query: dict[str, list[str]], body: object) -> tuple[dict[str, list[str]], object]:
    """Copies of query and body with any ``personal_api_key`` value replaced by its fingerprint."""
    clean_query = {
        k: ([fingerprint(v) for v in vs] if k == "personal_api_key" else list(vs))
        for k, vs in query.items()
    }
    clean_body = copy.deepcopy(body)
    if isinstance(clean_body, dict) and isinstance(clean_body.get("personal_api_key"), str):
        clean_body["personal_api_key"] = fingerprint(clean_body["personal_api_key"])
    return clean_query, clean_body


def key_id(headers: Mapping[str, str], body: object, query: Mapping[str, list[str]]) -> str | None:
    """Fingerprint of the key a request presented, if any (for ``RecordedRequest.key_id``)."""
    found = find_key(headers, body, query)
    return fingerprint(found[0]) if found else None


class Recorder:
    """Thread-safe request log in arrival order."""

    def __init__(self) -> None:
        self._entries: list[RecordedRequest] = []
        self._lock = threading.Lock()

    def start(self, entry: RecordedRequest) -> int:
        """Log a request on arrival; returns its slot for ``finish``."""
        with self._lock:
            self._entries.append(entry)
            return len(self._entries) - 1

    def finish(self, slot: int, entry: RecordedRequest, status: int) -> None:
        """Fill in the status sent for the request in ``slot``."""
        done = RecordedRequest(
            entry.method, entry.path, entry.query, entry.body, status, entry.key_id
        )
        with self._lock:
            if slot < len(self._entries) and self._entries[slot] is entry:
                self._entries[slot] = done

    def snapshot(self) -> list[RecordedRequest]:
        """All requests so far."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget all requests."""
        with self._lock:
            self._entries.clear()

    def count(self, method: str, path_regex: str) -> int:
        """Requests matching method (``*`` = any) and a regex searched in the path."""
        pattern = re.compile(path_regex)
        return sum(
            1
            for r in self.snapshot()
            if (method == "*" or r.method == method.upper()) and pattern.search(r.path)
        )
