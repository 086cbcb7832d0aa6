"""Many parallel keep-alive clients."""

from __future__ import annotations

import http.client
import json
import threading
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.emulator


def test_200_parallel_clients_all_succeed(emu, export):
    host, port = urlsplit(emu.url).hostname, urlsplit(emu.url).port
    statuses: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    gate = threading.Barrier(200)

    def client() -> None:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=30)
            gate.wait(timeout=30)
            for _ in range(3):  # keep-alive: three requests on one connection
                conn.request(
                    "GET",
                    f"/api/projects/1/batch_exports/{export['id']}",
                    headers={"Authorization": f"Bearer {emu.api_key}"},
                )
                resp = conn.getresponse()
                assert json.loads(resp.read())["id"] == export["id"]
                with lock:
                    statuses.append(resp.status)
            conn.close()
        except BaseException as exc:
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert failures == []
    assert statuses == [200] * 600
