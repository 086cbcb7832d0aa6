"""Injected faults: status codes, Retry-After, delays, dropped connections, malformed bodies."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from . import _errors
from ._http import Response, error_response, json_response

_PROXY_BODIES = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}
MALFORMED_BODY = b'{"id": "0190", "status": "Running", "results": [{"unterminated'


@dataclass
class FaultHandle:
    """A registered fault; ``hits`` counts the requests it affected so far."""

    method: str
    path_regex: str
    status: int | None = None
    times: int | None = 1
    retry_after: int | None = None
    delay: float = 0.0
    drop: bool = False
    malformed: bool = False
    process: bool = False
    body: Any = None
    hits: int = 0

    @property
    def spent(self) -> bool:
        """Whether it has affected ``times`` requests already."""
        return self.times is not None and self.hits >= self.times

    def matches(self, method: str, path: str) -> bool:
        """Whether a request is in scope (method ``*`` = any, regex searched in the path)."""
        return (self.method == "*" or self.method.upper() == method.upper()) and bool(
            re.search(self.path_regex, path)
        )

    def response(self, real: Response | None) -> Response | None:
        """The response to send instead (``None`` = send ``real`` unchanged)."""
        if self.malformed:
            return Response(200, None, MALFORMED_BODY, "application/json")
        if self.status is None and self.body is None:
            return None
        status = self.status if self.status is not None else 200
        headers: dict[str, str] = {}
        if status == 429 and self.retry_after is not None:
            headers["Retry-After"] = str(int(self.retry_after))
        if self.body is not None:
            return json_response(status, self.body, headers)
        if status in _PROXY_BODIES:
            text = _PROXY_BODIES[status]
            title = f"{status} {text}"
            html = (
                f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
            )
            return Response(status, None, html.encode(), "text/html", headers)
        if status == 429:
            wait = self.retry_after if self.retry_after is not None else 1
            error = _errors.throttled(wait)
            if self.retry_after is None:
                error.headers.pop("Retry-After", None)
            return error_response(error)
        if status < 400:
            return json_response(status, {})
        error = _errors.for_status(status)
        error.status = status
        return error_response(error)


class FaultSet:
    """Registered faults, matched in registration order; the first unspent match applies."""

    def __init__(self) -> None:
        self._faults: list[FaultHandle] = []
        self._lock = threading.Lock()

    def add(self, fault: FaultHandle) -> FaultHandle:
        """Register a fault."""
        re.compile(fault.path_regex)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove all faults."""
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> FaultHandle | None:
        """Claim the fault for this request (counting the hit), if one applies."""
        with self._lock:
            for fault in self._faults:
                if not fault.spent and fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None
