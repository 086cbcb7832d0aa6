"""HTTP transport: threaded HTTP/1.1 keep-alive server; applies faults, records requests."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import _errors
from ._faults import FaultSet
from ._http import InvalidBody, Request, Response, error_response
from ._recording import RecordedRequest, Recorder, key_id, redact

Pipeline = Callable[[Request], Response]


class EmulatorServer(ThreadingHTTPServer):
    """Threaded server with a deep listen backlog; tracks connections so ``close`` ends them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # the stdlib default of 5 drops connections under load

    def __init__(
        self, address: tuple[str, int], pipeline: Pipeline, faults: FaultSet, recorder: Recorder
    ) -> None:
        self.pipeline = pipeline
        self.faults = faults
        self.recorder = recorder
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Track the connection, then serve it in a daemon thread."""
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget and close a finished connection."""
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that went away (timeouts, resets); report anything else."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def close(self) -> None:
        """Stop listening and cut every open keep-alive connection."""
        self.server_close()
        with self._conn_lock:
            open_connections = list(self._connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PostHogEmulator/0.1"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    # Headers and body go out in two writes; with Nagle on, each keep-alive answer waits ~40 ms.
    disable_nagle_algorithm = True
    server: EmulatorServer

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: no stderr line per request."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        request = Request(
            method=self.command.upper(),
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,  # type: ignore[arg-type]  # Message is a str->str mapping
            raw_body=raw,
            base=f"http://{host}",
        )
        body = request.parsed_body()
        query, clean_body = redact(request.query, None if isinstance(body, InvalidBody) else body)
        entry = RecordedRequest(
            request.method,
            request.path,
            query,
            clean_body,
            0,
            key_id(request.headers, body, request.query),
        )
        slot = self.server.recorder.start(entry)
        fault = self.server.faults.take(request.method, request.path)
        response: Response | None = None
        if fault is not None and fault.process:
            response = self._run(request)
        if fault is not None:
            time.sleep(fault.delay)
            if fault.drop:
                self.server.recorder.finish(slot, entry, 0)
                self._drop()
                return
            response = fault.response(response) or response
        if response is None:
            response = self._run(request)
        self.server.recorder.finish(slot, entry, response.status)
        self._write(response)

    def _run(self, request: Request) -> Response:
        try:
            return self.server.pipeline(request)
        except Exception:  # an emulator bug must still look like PostHog's 500
            return error_response(_errors.server_error())

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)
