"""Helpers shared by the benchmark scripts: emulator processes, backfill setup, figures.

Also runnable as ``python benchmarks/_common.py serve OPTIONS_JSON READY_FILE`` to serve a
``PostHogEmulator`` with options the CLI does not have (a second, unthrottled key for setup;
throttle windows shortened by a time-scale factor). Everything binds 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
SETUP_KEY = "phx_bench_setup_key"
UTC = timezone.utc


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` shows them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> str:
    """Cores, memory and load, for the printed header."""
    try:
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
        memory = f"{mem_kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        memory = "?"
    return f"{os.cpu_count()} cores, {memory}, load average {load_average()}"


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def child_env(**extra: str) -> dict[str, str]:
    """Environment for child interpreters: this checkout importable, a throwaway Airflow home."""
    home = extra.pop("AIRFLOW_HOME", None) or tempfile.mkdtemp(prefix="bench-airflow-home-")
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        **extra,
    }


class Emulator:
    """An emulator in its own process (its own GIL); stopped by ``close`` or ``with``."""

    def __init__(self, cmd: list[str], ready: Path) -> None:
        self.ready = ready
        self.proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise SystemExit("emulator did not start")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        self.url: str = info["url"]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.api_key: str = info["api_key"]
        self.project_id: int = info["project_id"]
        self.batch_export_id: str = info["batch_export_id"]
        self.batch_export_ids: list[str] = info.get("batch_export_ids") or [self.batch_export_id]
        self.setup_key: str = info.get("setup_key", self.api_key)
        # When the seeded runs and log entries (start_custom_emulator(seed=...)) began.
        self.seeded_at: datetime | None = (
            datetime.fromisoformat(info["seeded_at"]) if info.get("seeded_at") else None
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_cli_emulator(tmp: Path, **options: Any) -> Emulator:
    """The emulator CLI (``python -m airflow_provider_posthog_bx.testing.emulator``)."""
    ready = tmp / "emulator-ready.json"
    cmd = [sys.executable, "-m", "airflow_provider_posthog_bx.testing.emulator"]
    cmd += ["--host", HOST, "--port", "0", "--ready-file", str(ready)]
    for name, value in options.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    return Emulator(cmd, ready)


def start_custom_emulator(
    tmp: Path, window_scale: float = 1.0, stats_file: Path | None = None, **options: Any
) -> Emulator:
    """A ``PostHogEmulator(**options)`` in a child process, plus an unthrottled setup key.

    :param window_scale: divide the throttle's 60 s and 3600 s windows by this factor, so
        ``rate_limit=(480, 4800)`` with ``window_scale=k`` is PostHog's limit with time sped up
        k times.
    :param stats_file: if given, the child rewrites this JSON file about once a second with
        its request counts (``read_stats``), for request rates seen from the emulator's side.

    Besides the emulator's own options, ``exports`` (how many hourly exports to create) and
    ``seed`` (runs and log entries that play out over time, see ``_seed``).
    """
    ready = tmp / "emulator-ready.json"
    spec: dict[str, Any] = {"options": options, "window_scale": window_scale}
    if stats_file is not None:
        spec["stats_file"] = str(stats_file)
    cmd = [sys.executable, str(Path(__file__).resolve()), "serve", json.dumps(spec), str(ready)]
    return Emulator(cmd, ready)


def _serve(spec_json: str, ready_file: str) -> int:
    from airflow_provider_posthog_bx.testing import PostHogEmulator

    spec = json.loads(spec_json)
    options = dict(spec["options"])
    exports = int(options.pop("exports", 1))
    seed = options.pop("seed", None)
    if options.get("rate_limit") is not None:
        options["rate_limit"] = tuple(options["rate_limit"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    emulator = PostHogEmulator(host=HOST, port=0, **options)
    scale = float(spec.get("window_scale") or 1.0)
    throttle = getattr(emulator, "_throttle", None)
    if throttle is not None and scale != 1.0:
        # Private, on purpose: the benchmark compresses time, the emulator does not offer it.
        throttle._rates = tuple((limit, window / scale) for limit, window in throttle._rates)
    with emulator:
        # The setup key creates backfills without eating the measured key's allowance. It is
        # throttled separately (per key), and generously.
        emulator.add_api_key(SETUP_KEY, scopes=["*"])
        made = [
            emulator.create_batch_export(name=f"Benchmark export {n}", interval="hour")["id"]
            for n in range(exports)
        ]
        seeded_at = emulator.now()
        if seed:
            _seed(emulator, made, seed, seeded_at)
        info = {
            "url": emulator.url,
            "api_key": emulator.api_key,
            "project_id": emulator.project_id,
            "batch_export_id": made[0],
            "batch_export_ids": made,
            "setup_key": SETUP_KEY,
            "seeded_at": seeded_at.isoformat(),
        }
        tmp = f"{ready_file}.tmp"
        Path(tmp).write_text(json.dumps(info))
        os.replace(tmp, ready_file)
        stats_file = spec.get("stats_file")
        counts: dict[str, int] = {}
        seen = 0
        while not stop.wait(1.0 if stats_file else 0.2):
            if stats_file:
                seen = _write_stats(emulator, stats_file, counts, seen)
    return 0


def _seed(emulator: Any, exports: list[str], seed: dict[str, Any], now: datetime) -> None:
    """Runs and log entries that play out from ``now`` (the emulator's clock), for waits on
    them; each item names its export by index.

    - ``runs``: ``[export, hours_ago, running_for]``: a run of the hour ending ``hours_ago``
      whole hours before ``now``'s hour, Running for ``running_for`` s, then Completed;
    - ``logs``: ``[export, offset, level, message]``: an entry stamped ``now + offset`` s that
      becomes visible then.
    """
    top = now.replace(minute=0, second=0, microsecond=0)
    for index, hours_ago, running_for in seed.get("runs", []):
        end = top - timedelta(hours=hours_ago)
        emulator.add_run(
            exports[index], end - timedelta(hours=1), end, running_for=float(running_for)
        )
    for index, offset, level, message in seed.get("logs", []):
        emulator.add_log(
            exports[index],
            message,
            level=level,
            timestamp=now + timedelta(seconds=offset),
            visible_after=float(offset),
        )


def _write_stats(emulator: Any, stats_file: str, counts: dict[str, int], seen: int) -> int:
    """Add the requests since ``seen`` to ``counts`` (by method and route); write the file."""
    recorded = emulator.requests
    for request in recorded[seen:]:
        path = request.path.rstrip("/")
        if "/backfills" not in path:
            route = "other"
        elif path.endswith("/backfills"):
            route = "backfills"  # the listing, or a create (POST)
        else:
            route = "backfill"
        key = f"{request.method} {route}"
        counts[key] = counts.get(key, 0) + 1
    tmp = f"{stats_file}.tmp"
    Path(tmp).write_text(json.dumps({"t": time.time(), "total": len(recorded), **counts}))
    os.replace(tmp, stats_file)
    return len(recorded)


def read_stats(stats_file: Path) -> dict[str, Any]:
    """The last counts a ``stats_file`` emulator wrote (``{}`` before the first)."""
    try:
        return dict(json.loads(stats_file.read_text()))
    except (OSError, ValueError):
        return {}


def create_backfills(
    emulator: Emulator,
    hours: Sequence[int],
    threads: int = 4,
    key: str | None = None,
    batch_export_id: str | None = None,
) -> list[str]:
    """Create one backfill per entry of ``hours`` (that many hourly runs each); return ids.

    Plain HTTP over keep-alive connections, ``threads`` at a time, with the setup key, on
    ``batch_export_id`` (default: the emulator's first export).
    """
    key = key or emulator.setup_key
    export = batch_export_id or emulator.batch_export_id
    path = f"/api/projects/{emulator.project_id}/batch_exports/{export}/backfills/"
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    ids: list[str | None] = [None] * len(hours)
    errors: list[str] = []
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def work(indexes: range) -> None:
        conn = http.client.HTTPConnection(HOST, emulator.port, timeout=60)
        for i in indexes:
            end = base - timedelta(hours=24 * (i % 50))
            start = end - timedelta(hours=hours[i])
            bounds = {"start_at": start, "end_at": end}
            # bytes, so http.client sends headers and body in one packet (no Nagle stall)
            body = json.dumps(
                {k: v.isoformat().replace("+00:00", "Z") for k, v in bounds.items()}
            ).encode()
            for _ in range(20):
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 429:
                    break
                time.sleep(float(resp.headers.get("Retry-After") or 1))  # the setup key's limit
            if resp.status != 201:
                errors.append(f"{resp.status} {data[:200]!r}")
                return
            ids[i] = json.loads(data)["backfill_id"]
        conn.close()

    workers = [
        threading.Thread(target=work, args=(range(t, len(hours), threads),)) for t in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise SystemExit(f"could not create backfills: {errors[0]}")
    return [i for i in ids if i is not None]


def parse_time(value: str | None) -> float | None:
    """Unix time of a DRF timestamp such as ``2026-01-01T00:00:00.123456Z``."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def rss_mib(pid: int | None = None) -> float:
    """Resident memory of a process, in MiB."""
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        sys.exit(_serve(sys.argv[2], sys.argv[3]))
    raise SystemExit("usage: _common.py serve OPTIONS_JSON READY_FILE")
