"""Throughput of the PostHog emulator: N concurrent keep-alive clients doing bounded GETs.

Starts the emulator CLI in a subprocess (its own interpreter, so client and server do not
share a GIL), runs ``--clients`` threads that each send ``--requests`` GET requests for one
batch export over loopback, then prints requests/s, errors, dropped connections and latency
percentiles. Bounded by request count and ``--max-seconds``; targets only 127.0.0.1.
``--live-backfills N`` first creates N backfills (48 hourly runs each, ``--run-seconds`` per run)
that stay in flight while the clients measure.

    PYTHONPATH=. python benchmarks/emulator_throughput.py --clients 500 --requests 10
    PYTHONPATH=. python benchmarks/emulator_throughput.py --live-backfills 2000
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
LIVE_BACKFILL_HOURS = 48

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402


def start_emulator(ready: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [
        sys.executable,
        "-m",
        "airflow_provider_posthog_bx.testing",
        "--host",
        HOST,
        "--port",
        "0",
        "--ready-file",
        str(ready),
        # Throughput, not PostHog's per-key limits (on by default, as in PostHog Cloud).
        "--rate-limit",
        "off",
        *extra,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("emulator did not start")
        time.sleep(0.05)
    return proc


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--requests", type=int, default=10, help="GET requests per client")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="hard stop")
    parser.add_argument(
        "--new-connections",
        action="store_true",
        help="open a new TCP connection for every request (no keep-alive)",
    )
    parser.add_argument(
        "--live-backfills",
        type=int,
        default=0,
        metavar="N",
        help="backfills kept in flight during the measurement",
    )
    parser.add_argument(
        "--run-seconds",
        type=float,
        default=60.0,
        help="seconds per run of the live backfills (they stay in flight 48 runs long)",
    )
    args = parser.parse_args()
    extra: list[str] = []
    created_in = 0.0
    if args.live_backfills:
        extra = [
            "--max-concurrent-backfills",
            str(args.live_backfills + 10),
            "--run-seconds",
            str(args.run_seconds),
            "--backfill-create-delay",
            "0.2",
            "--backfill-starting-seconds",
            "0.2",
        ]

    threading.stack_size(512 * 1024)
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready.json"
        proc = start_emulator(ready, extra)
        try:
            info = json.loads(ready.read_text())
            port = int(info["url"].rsplit(":", 1)[1])
            if args.live_backfills:
                live = _LiveInfo(info)
                began = time.monotonic()
                common.create_backfills(
                    live, [LIVE_BACKFILL_HOURS] * args.live_backfills, threads=16
                )
                created_in = time.monotonic() - began
                time.sleep(0.5)  # past the create delay and Starting: every backfill is Running
            path = f"/api/projects/{info['project_id']}/batch_exports/{info['batch_export_id']}"
            headers = {"Authorization": f"Bearer {info['api_key']}"}
            latencies: list[float] = []
            errors: dict[str, int] = {}
            dropped = 0
            lock = threading.Lock()
            gate = threading.Barrier(args.clients + 1)
            deadline_box: list[float] = []

            def client() -> None:
                nonlocal dropped
                conn: http.client.HTTPConnection | None = None
                gate.wait()
                for _ in range(args.requests):
                    if time.monotonic() > deadline_box[0]:
                        return
                    if conn is None:
                        conn = http.client.HTTPConnection(HOST, port, timeout=30)
                    start = time.perf_counter()
                    try:
                        conn.request("GET", path, headers=headers)
                        resp = conn.getresponse()
                        resp.read()
                        elapsed = time.perf_counter() - start
                        with lock:
                            latencies.append(elapsed)
                            if resp.status != 200:
                                errors[f"HTTP {resp.status}"] = (
                                    errors.get(f"HTTP {resp.status}", 0) + 1
                                )
                    except (OSError, http.client.HTTPException) as exc:  # resets, timeouts, ...
                        with lock:
                            dropped += 1
                            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                        conn.close()
                        conn = None
                        continue
                    if args.new_connections:
                        conn.close()
                        conn = None
                if conn is not None:
                    conn.close()

            threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
            for t in threads:
                t.start()
            deadline_box.append(time.monotonic() + args.max_seconds)
            began = time.perf_counter()
            gate.wait()
            for t in threads:
                t.join(timeout=max(0.0, deadline_box[0] - time.monotonic()) + 5)
            wall = time.perf_counter() - began
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    ok = len(latencies) - sum(v for k, v in errors.items() if k.startswith("HTTP"))
    total = len(latencies) + dropped
    mode = "new connection per request" if args.new_connections else "keep-alive"
    if args.live_backfills:
        print(
            f"live backfills:       {args.live_backfills} (created in {created_in:.1f} s, "
            f"{args.run_seconds:g} s per run)"
        )
    print(f"clients:              {args.clients} ({mode})")
    print(f"requests attempted:   {total} (bound {args.clients * args.requests})")
    print(f"requests ok (200):    {ok}")
    print(f"errors:               {sum(errors.values())} {errors or ''}")
    print(f"dropped connections:  {dropped}")
    print(f"wall time:            {wall:.2f} s")
    print(f"throughput:           {len(latencies) / wall:.0f} requests/s")
    print(
        f"latency p50 / p99:    {percentile(latencies, 50) * 1000:.1f} ms / "
        f"{percentile(latencies, 99) * 1000:.1f} ms"
    )
    return 0 if dropped == 0 and not errors else 1


class _LiveInfo:
    """What ``common.create_backfills`` needs to know about the emulator."""

    def __init__(self, info: dict[str, object]) -> None:
        self.url = str(info["url"])
        self.port = int(self.url.rsplit(":", 1)[1])
        self.project_id = info["project_id"]
        self.batch_export_id = info["batch_export_id"]
        self.setup_key = str(info["api_key"])


if __name__ == "__main__":
    sys.exit(main())
