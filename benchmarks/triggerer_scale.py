"""Triggerer scale: N deferred backfill waits in one event loop versus N sync poke loops.

For each N, an emulator runs in its own process (the CLI) holding N backfills, and a fresh
worker process waits for all of them:

- ``async``: N ``BatchExportBackfillTrigger.run()`` coroutines in ONE asyncio event loop, as
  Airflow's TriggerRunner runs them (kwargs JSON round-tripped from ``serialize()``, one task
  per trigger, first event taken). Triggers start evenly spread over one poll interval, as
  tasks defer at different moments in a real deployment.
- ``sync``: N threads, each with its own ``PostHogHook`` polling ``get_backfill`` and sleeping
  ``poll_interval``: what N sensors/operators in poke mode do, minus the worker slot each one
  really occupies (see the "process floor" line, measured in the same worker before any thread).

Timeline per run: triggers start over one interval; the next interval is the steady window
(CPU per poll, requests/s, RSS); backfills then finish spread over a few seconds; the run
ends when every wait has its event (or at a hard deadline). Event latency is the trigger's
event time minus the backfill's ``finished_at``.

A last run holds ``--tracemalloc-n`` triggers under tracemalloc to attribute the memory of
one waiting trigger. The triggers' request budget is set far above the emulator's capacity
here (api_budget.py measures the budget). Targets only 127.0.0.1; bounded by deadlines.

    python benchmarks/triggerer_scale.py            # N = 100, 500, 1000, 2000
    python benchmarks/triggerer_scale.py --quick    # N = 100, 500; shorter interval
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

CONN_ID = "posthog_bench"
HOURS_SPREAD = 3  # backfills run 1..3 hourly runs, so they finish spread over 3 run lengths


# ------------------------------------------------------------------------------------------
# Workers (run in a fresh interpreter each)


def _conn_env(info: dict[str, Any]) -> None:
    conn = {
        "conn_type": "posthog",
        "host": info["url"],
        "password": info["api_key"],
        "extra": {"project_id": info["project_id"], "trigger_requests_per_minute": 1e9},
    }
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(conn)


def _wait_for(path: Path, limit: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"worker: {path} never appeared")
        time.sleep(0.05)
    return dict(json.loads(path.read_text()))


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _emulator_cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def worker_async(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    logging.basicConfig(level=logging.WARNING)
    info = json.loads(Path(args.info).read_text())
    _conn_env(info)

    from airflow_provider_posthog_bx import api
    from airflow_provider_posthog_bx.hooks import posthog_async
    from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook
    from airflow_provider_posthog_bx.triggers.backfill import BatchExportBackfillTrigger

    sent = [0]
    original_send = AsyncPostHogHook._send

    async def counting_send(self: Any, request: Any) -> Any:
        sent[0] += 1
        return await original_send(self, request)

    AsyncPostHogHook._send = counting_send  # type: ignore[method-assign]
    if args.old_pool:
        _restore_old_pool(posthog_async)

    async def main() -> dict[str, Any]:
        # Warm-up: the shared client, the budget, httpx imported; then the N=0 baseline.
        hook = AsyncPostHogHook(CONN_ID)
        await hook.request(api.get_batch_export(info["project_id"], info["batch_export_id"]))
        if args.tracemalloc:
            import tracemalloc

            tracemalloc.start(1)
        gc.collect()
        rss0 = common.rss_mib()
        snap0 = tracemalloc.take_snapshot() if args.tracemalloc else None
        print("ready", flush=True)
        job = _wait_for(Path(args.ids), 600)
        ids: list[str] = job["ids"]
        n = len(ids)
        p = args.poll_interval
        events: list[tuple[float, dict[str, Any]]] = []
        lags: list[float] = []
        stop = asyncio.Event()

        async def monitor() -> None:  # event-loop lag: how late a 100 ms sleep wakes up
            while not stop.is_set():
                start = time.perf_counter()
                await asyncio.sleep(0.1)
                lags.append(time.perf_counter() - start - 0.1)

        async def run_one(index: int, backfill_id: str) -> None:
            await asyncio.sleep(0 if args.storm else p * index / n)
            made = BatchExportBackfillTrigger(
                posthog_conn_id=CONN_ID,
                project_id=None,
                batch_export_id=info["batch_export_id"],
                backfill_id=backfill_id,
                poll_interval=p,
                not_found_until=time.time() + 60,
            )
            classpath, kwargs = made.serialize()
            module, _, name = classpath.rpartition(".")
            cls = getattr(__import__(module, fromlist=[name]), name)
            trigger = cls(**json.loads(json.dumps(kwargs)))
            async for event in trigger.run():
                events.append((time.time(), event.payload))
                break

        mon = asyncio.create_task(monitor())
        t0 = time.monotonic()
        tasks = [asyncio.create_task(run_one(i, b)) for i, b in enumerate(ids)]
        await asyncio.sleep(p + 0.5)  # all started and polled once
        cpu1, req1, emu1, w1 = _cpu(), sent[0], _emulator_cpu(args.emulator_pid), time.monotonic()
        lag_from = len(lags)
        await asyncio.sleep(p)  # the steady window: every trigger polls about once
        cpu2, req2, emu2, w2 = _cpu(), sent[0], _emulator_cpu(args.emulator_pid), time.monotonic()
        steady_lags = lags[lag_from:]
        gc.collect()
        rss1 = common.rss_mib()
        import httpx

        clients = sum(1 for o in gc.get_objects() if isinstance(o, httpx.AsyncClient))
        import psutil

        tcp = len([c for c in psutil.Process().net_connections("tcp") if c.status == "ESTABLISHED"])
        memory: dict[str, Any] = {}
        if snap0 is not None:
            import tracemalloc

            snap1 = tracemalloc.take_snapshot()
            stats = snap1.compare_to(snap0, "filename")
            total = sum(s.size_diff for s in stats)
            by_file = [
                (s.traceback[0].filename.replace(str(common.ROOT) + "/", ""), s.size_diff)
                for s in stats[:12]
            ]
            memory = {"tracemalloc_total": total, "by_file": by_file}
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, mon, return_exceptions=True)
        else:
            remaining = args.deadline - (time.monotonic() - t0)
            _, pending = await asyncio.wait(tasks, timeout=max(1.0, remaining))
            for task in pending:
                task.cancel()
            stop.set()
            await asyncio.gather(*pending, mon, return_exceptions=True)
        await posthog_async.shared_client().aclose()
        return {
            "mode": "async",
            "n": n,
            "poll_interval": p,
            "rss0": rss0,
            "rss1": rss1,
            "cpu_per_request_ms": (cpu2 - cpu1) / max(1, req2 - req1) * 1000,
            "cpu_share": (cpu2 - cpu1) / (w2 - w1),
            "rps": (req2 - req1) / (w2 - w1),
            "emulator_cpu_share": (emu2 - emu1) / (w2 - w1),
            "lag_p99_ms": common.percentile(steady_lags, 99) * 1000,
            "lag_max_ms": max(steady_lags, default=float("nan")) * 1000,
            "events": _event_summary(events),
            "requests": sent[0],
            "httpx_clients": clients,
            "shared_clients": len(posthog_async._clients),
            "tcp_connections": tcp,
            "elapsed": time.monotonic() - t0,
            **memory,
        }

    return asyncio.run(main())


def _restore_old_pool(posthog_async: Any) -> None:
    """The design before the in-flight cap: pool of 64 (32 kept alive), no gate."""
    import contextlib

    import httpx

    posthog_async.in_flight_gate = contextlib.nullcontext  # an async no-op context manager
    original = posthog_async.shared_client

    def shared_client() -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if loop not in posthog_async._clients:
            posthog_async._clients[loop] = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=32)
            )
        return original()

    posthog_async.shared_client = shared_client


def worker_sync(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    logging.basicConfig(level=logging.WARNING)
    info = json.loads(Path(args.info).read_text())
    _conn_env(info)

    from airflow_provider_posthog_bx.core import statuses
    from airflow_provider_posthog_bx.hooks.posthog import PostHogHook

    warm = PostHogHook(CONN_ID)
    warm.get_batch_export(info["batch_export_id"])
    gc.collect()
    rss0 = common.rss_mib()
    print("ready", flush=True)
    job = _wait_for(Path(args.ids), 600)
    ids: list[str] = job["ids"]
    n = len(ids)
    p = args.poll_interval
    events: list[tuple[float, dict[str, Any]]] = []
    sent = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def poke(index: int, backfill_id: str) -> None:
        try:
            poke_loop(index, backfill_id)
        except BaseException as error:  # a crashed poke loop is a failed wait, not a hang
            with lock:
                events.append((time.time(), {"status": f"crash {type(error).__name__}: {error}"}))

    def poke_loop(index: int, backfill_id: str) -> None:
        if stop.wait(0 if args.storm else p * index / n):
            return
        hook = PostHogHook(CONN_ID)
        while not stop.is_set():
            try:
                backfill = hook.get_backfill(info["batch_export_id"], backfill_id)
            except Exception as error:  # counted as a failed wait
                with lock:
                    events.append((time.time(), {"status": "error", "message": str(error)}))
                return
            finally:
                with lock:
                    sent[0] += 1
            if statuses.is_final(statuses.status_of(backfill)):
                with lock:
                    events.append((time.time(), {"status": "final", "backfill": backfill}))
                return
            stop.wait(p)

    t0 = time.monotonic()
    threads = [threading.Thread(target=poke, args=(i, b), daemon=True) for i, b in enumerate(ids)]
    for t in threads:
        t.start()
    time.sleep(p + 0.5)
    cpu1, req1, emu1, w1 = _cpu(), sent[0], _emulator_cpu(args.emulator_pid), time.monotonic()
    time.sleep(p)
    cpu2, req2, emu2, w2 = _cpu(), sent[0], _emulator_cpu(args.emulator_pid), time.monotonic()
    gc.collect()
    rss1 = common.rss_mib()
    import psutil

    tcp = len([c for c in psutil.Process().net_connections("tcp") if c.status == "ESTABLISHED"])
    deadline = t0 + args.deadline
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    stop.set()
    return {
        "mode": "sync",
        "n": n,
        "poll_interval": p,
        "rss0": rss0,
        "rss1": rss1,
        "cpu_per_request_ms": (cpu2 - cpu1) / max(1, req2 - req1) * 1000,
        "cpu_share": (cpu2 - cpu1) / (w2 - w1),
        "rps": (req2 - req1) / (w2 - w1),
        "emulator_cpu_share": (emu2 - emu1) / (w2 - w1),
        "events": _event_summary(events),
        "requests": sent[0],
        "tcp_connections": tcp,
        "elapsed": time.monotonic() - t0,
    }


def _event_summary(events: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    latencies = []
    statuses: dict[str, int] = {}
    messages = sorted({str(p.get("message"))[:200] for _, p in events if p.get("message")})
    for at, payload in events:
        status = str(payload.get("status"))
        statuses[status] = statuses.get(status, 0) + 1
        backfill = payload.get("backfill") or {}
        finished = common.parse_time(backfill.get("finished_at"))
        if status == "final" and finished is not None:
            latencies.append(at - finished)
    return {
        "statuses": statuses,
        "latency_p50": common.percentile(latencies, 50),
        "latency_p95": common.percentile(latencies, 95),
        "latency_max": max(latencies, default=float("nan")),
        "messages": messages[:3],
    }


# ------------------------------------------------------------------------------------------
# Orchestrator


def poll_interval_for(n: int, args: argparse.Namespace) -> float:
    """The given interval, or N/100 s (at least 5 s): at most 100 requests/s for the emulator."""
    return float(args.poll_interval) if args.poll_interval else max(5.0, n / 100)


def run_one(
    mode: str, n: int, args: argparse.Namespace, tracemalloc: bool = False
) -> dict[str, Any]:
    p = poll_interval_for(n, args)
    run_seconds = max(1.0, p / HOURS_SPREAD)
    # Backfills must outlive creation + the start interval + the steady window.
    hold = 2 * p + 3 + n * 0.005
    if tracemalloc:
        hold += 600  # never finish: the run is cancelled after the snapshot
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with common.start_cli_emulator(
            tmp,
            rate_limit="off",  # the triggerer's own budget paces the polls
            max_concurrent_backfills=n + 10,
            backfill_create_delay=0.5,
            backfill_starting_seconds=hold,
            run_seconds=run_seconds,
        ) as emulator:
            info_file, ids_file = tmp / "info.json", tmp / "ids.json"
            info_file.write_text(
                json.dumps(
                    {
                        "url": emulator.url,
                        "api_key": emulator.api_key,
                        "project_id": emulator.project_id,
                        "batch_export_id": emulator.batch_export_id,
                    }
                )
            )
            deadline = hold + HOURS_SPREAD * run_seconds + 2 * p + 20
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--role",
                f"worker-{mode}",
                "--info",
                str(info_file),
                "--ids",
                str(ids_file),
                "--poll-interval",
                str(p),
                "--emulator-pid",
                str(emulator.pid),
                "--deadline",
                str(deadline),
            ]
            cmd += ["--tracemalloc"] if tracemalloc else []
            cmd += ["--old-pool"] if args.old_pool else []
            cmd += ["--storm"] if args.storm else []
            worker = subprocess.Popen(
                cmd, env=common.child_env(), stdout=subprocess.PIPE, text=True
            )
            try:
                assert worker.stdout is not None
                line = worker.stdout.readline().strip()
                if line != "ready":
                    raise SystemExit(f"worker failed to start ({line!r})")
                began = time.monotonic()
                ids = common.create_backfills(
                    emulator, [1 + i % HOURS_SPREAD for i in range(n)], threads=16
                )
                created = time.monotonic() - began
                time.sleep(0.6)  # past the 0.5 s create delay: no wait starts on a 404
                partial = ids_file.with_suffix(".tmp")
                partial.write_text(json.dumps({"ids": ids}))
                os.replace(partial, ids_file)  # the worker never reads half a file
                out, _ = worker.communicate(timeout=deadline + 120)
            finally:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
            if worker.returncode != 0:
                raise SystemExit(f"worker {mode} N={n} failed (exit {worker.returncode})")
            result = dict(json.loads(out.strip().splitlines()[-1]))
            result["create_seconds"] = created
            result["load"] = common.load_average()
            return result


def print_row(r: dict[str, Any]) -> None:
    n = r["n"]
    per_wait = (r["rss1"] - r["rss0"]) * 1024 / n
    ev = r["events"]
    ok = ev["statuses"].get("final", 0)
    lag = f"{r['lag_p99_ms']:6.0f}" if "lag_p99_ms" in r else "     -"
    print(
        f"{r['mode']:<6}{n:>6}{r['poll_interval']:4.0f} {r['rss0']:7.0f} {r['rss1']:7.0f} "
        f"{per_wait:8.1f} "
        f"{r['cpu_per_request_ms']:7.2f} {r['cpu_share'] * 100:5.0f}% {r['rps']:7.1f} "
        f"{n / r['poll_interval']:6.1f} {ev['latency_p50']:6.2f} {ev['latency_p95']:6.2f} "
        f"{ev['latency_max']:6.2f} {ok:>5}/{n:<5} {lag} {r['emulator_cpu_share'] * 100:4.0f}% "
        f"{r['tcp_connections']:5d}  {r['load']}"
    )
    if ok != n:
        print(f"       not final: {ev['statuses']} (missing ones hit the deadline)")
        for message in ev["messages"]:
            print(f"       e.g. {message}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", default="main", help=argparse.SUPPRESS)
    parser.add_argument("--info", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--emulator-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=120.0, help=argparse.SUPPRESS)
    parser.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", default="100,500,1000,2000", help="comma-separated wait counts")
    parser.add_argument("--sync-n", default="100,500,2000", help="N for sync mode ('' = none)")
    parser.add_argument(
        "--poll-interval", type=float, default=0, help="seconds (default: N/100, at least 5)"
    )
    parser.add_argument(
        "--storm",
        action="store_true",
        help="start every wait at once (a triggerer restart) instead of over one interval",
    )
    parser.add_argument(
        "--old-pool",
        action="store_true",
        help="async only: the design before the in-flight cap (pool 64/32, no gate)",
    )
    parser.add_argument("--tracemalloc-n", type=int, default=2000, help="0: skip")
    parser.add_argument("--quick", action="store_true", help="N=100,500, 5 s interval")
    args = parser.parse_args()

    if args.role == "worker-async":
        print(json.dumps(worker_async(args)), flush=True)
        return 0
    if args.role == "worker-sync":
        print(json.dumps(worker_sync(args)), flush=True)
        return 0

    if args.quick:
        args.n, args.sync_n, args.tracemalloc_n = "100,500", "500", 500
    ns = [int(x) for x in args.n.split(",") if x]
    sync_ns = [int(x) for x in args.sync_n.split(",") if x]
    print(f"machine: {common.machine()}")
    print(
        "emulator CLI in its own process; poll interval p = N/100 s (at least 5 s) unless "
        "given; request budget set out of the way (1e9/min)"
        + ("; OLD POOL (64/32, no in-flight cap)" if args.old_pool else "")
        + ("; STORM: all waits start at once" if args.storm else "")
    )
    print()
    header = (
        f"{'mode':<6}{'N':>6}{'p':>4} {'RSS0':>7} {'RSS1':>7} {'KiB/wait':>8} {'ms/poll':>7} "
        f"{'CPU':>6} {'req/s':>7} {'N/p':>6} {'lat50':>6} {'lat95':>6} {'latmx':>6} "
        f"{'events':>11} {'lag99':>6} {'emu':>5} {'conns':>5}  load"
    )
    print(header)
    results = []
    for n in ns:
        for mode in ("async", "sync"):
            if mode == "sync" and (n not in sync_ns or args.old_pool):
                continue
            r = run_one(mode, n, args)
            results.append(r)
            print_row(r)
    print()
    print("RSS0/RSS1: worker MiB before the waits / with all N polling; KiB/wait = delta / N.")
    print("ms/poll: worker CPU per request in the steady window; CPU: worker share of one core.")
    print("lat*: seconds from the backfill's finished_at to the wait noticing; lag99: event loop")
    print(
        "lag p99 (ms) in the steady window; emu: emulator CPU share; conns: open TCP connections."
    )
    sync_floor = [r["rss0"] for r in results if r["mode"] == "sync"]
    if sync_floor:
        print(
            f"process floor of one poke-mode task (Airflow SDK + hook imported, before polling): "
            f"{common.median(sync_floor):.0f} MiB RSS; N such task processes ~ N x that."
        )
    for r in results:
        if r["mode"] == "async":
            print(
                f"async N={r['n']}: httpx.AsyncClient objects alive: {r['httpx_clients']}, "
                f"shared clients registered: {r['shared_clients']}, "
                f"requests {r['requests']}, creation of backfills {r['create_seconds']:.1f} s"
            )
    print()
    if not args.tracemalloc_n:
        return 0
    tm = run_one("async", args.tracemalloc_n, args, tracemalloc=True)
    n = tm["n"]
    print(
        f"tracemalloc, {n} waiting triggers: {tm['tracemalloc_total'] / 1024 / n:.1f} KiB/wait "
        f"traced (RSS delta {(tm['rss1'] - tm['rss0']) * 1024 / n:.1f} KiB/wait, under "
        f"tracemalloc); by file (KiB total):"
    )
    for filename, size in tm["by_file"]:
        print(f"  {size / 1024:9.1f}  {filename}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
