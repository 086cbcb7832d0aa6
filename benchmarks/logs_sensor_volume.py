"""Logs sensor: requests and bytes per poke as a batch export's total log volume grows.

An emulator (in this process; only bytes and request counts are compared, not speed) holds an
export with ``V`` old log entries, for V = base, 10 x base and 100 x base. Between two pokes
``--new`` entries arrive. Per poke we count the HTTP requests and the response bytes of:

- ``sensor``: ``BatchExportLogsSensor.poke()`` in poke mode (its cursor asks PostHog only for
  entries after the newest one it processed);
- ``naive, latest page``: one ``GET .../logs/?limit=500`` per poke, filtered client-side
  (bounded, but silently misses entries when more than 500 arrive between pokes);
- ``naive, re-read all``: every entry read again each poke, paging back with ``before``
  (what a wait without a cursor needs to miss nothing).

Then two cases that are not about volume:

- catch-up: a backlog of ``--backlog`` entries (20,000 and 50,000) already waiting when the wait
  reads, by the poke-mode sensor (one poke) and by the logs trigger (every poll and re-deferral
  until all are read): requests against the minimum, ceil(entries / 500);
- late entries: after the sensor read an entry, ``--late`` entries up to 2 minutes older than
  it become visible (PostHog ingests logs asynchronously); how many the next poke finds.

Targets only 127.0.0.1; bounded by the poke counts and the backlog sizes.

    python benchmarks/logs_sensor_volume.py              # V = 1,000 / 10,000 / 100,000
    python benchmarks/logs_sensor_volume.py --quick      # V = 500 / 5,000 / 50,000; 20,000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

CONN_ID = "posthog_logs_bench"
PAGE = 500


class Meter:
    """Counts requests and response bytes of every PostHogHook send (the sync transport)."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0

    def install(self) -> None:
        from airflow_provider_posthog_bx.hooks.posthog import PostHogHook

        original = PostHogHook._send
        meter = self

        def counting_send(hook: Any, request: Any) -> Any:
            outcome = original(hook, request)
            meter.requests += 1
            meter.bytes += len(getattr(outcome, "body", b"") or b"")
            return outcome

        PostHogHook._send = counting_send  # type: ignore[method-assign]

    def take(self) -> tuple[int, int]:
        got = (self.requests, self.bytes)
        self.requests = self.bytes = 0
        return got


def connection_env(emulator: Any) -> str:
    """The emulator as an ``AIRFLOW_CONN_<ID>`` value (as the pytest plugin's helper builds
    it; that module needs pytest, which the bench venv does not have)."""
    return json.dumps(
        {
            "conn_type": "posthog",
            "host": emulator.url,
            "password": emulator.api_key,
            "extra": {"project_id": emulator.project_id},
        }
    )


def add_new(emulator: Any, export_id: str, count: int, poke: int) -> None:
    for i in range(count):
        emulator.add_log(export_id, f"Batch export poke {poke} line {i}: still running", "INFO")


def measure(volume: int, args: argparse.Namespace, meter: Meter) -> dict[str, Any]:
    from airflow_provider_posthog_bx.hooks.posthog import PostHogHook
    from airflow_provider_posthog_bx.sensors.logs import BatchExportLogsSensor
    from airflow_provider_posthog_bx.testing import PostHogEmulator

    with PostHogEmulator(host=common.HOST, rate_limit=None) as emulator:
        export = emulator.create_batch_export(name="Logs benchmark", interval="hour")
        export_id = export["id"]
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = connection_env(emulator)
        start = emulator.now() - timedelta(days=7)
        step = timedelta(days=7) / max(1, volume)
        emulator.add_logs(
            export_id,
            (
                (start + i * step, "INFO", f"Batch export for range {i} finished: 100 records")
                for i in range(volume)
            ),
        )
        sensor = BatchExportLogsSensor(
            task_id="wait_for_logs",
            batch_export_id=export_id,
            search="a message that never comes",
            posthog_conn_id=CONN_ID,
        )
        meter.take()
        sensor.poke({})  # the first poke starts the cursor at "now"
        first = meter.take()
        sensor_req, sensor_bytes, sensor_secs = [], [], []
        for poke in range(args.pokes):
            add_new(emulator, export_id, args.new, poke)
            began = time.perf_counter()
            assert sensor.poke({}) is False
            sensor_secs.append(time.perf_counter() - began)
            r, b = meter.take()
            sensor_req.append(r)
            sensor_bytes.append(b)

        hook = PostHogHook(CONN_ID)
        add_new(emulator, export_id, args.new, args.pokes + 1)
        meter.take()
        hook.get_logs(export_id, limit=PAGE)
        latest = meter.take()

        # Re-read everything, paging back with `before` (one pass).
        before = None
        total = 0
        while True:
            page = hook.get_logs(export_id, before=before, limit=PAGE)
            total += len(page)
            if len(page) < PAGE:
                break
            before = min(str(e["timestamp"]) for e in page)
        everything = meter.take()

        # A burst: more new entries than one page holds, in one poke.
        add_new(emulator, export_id, args.burst, args.pokes + 2)
        assert sensor.poke({}) is False
        burst = meter.take()
    return {
        "volume": volume,
        "first": first,
        "sensor_requests": common.median(sensor_req),
        "sensor_bytes": common.median(sensor_bytes),
        "sensor_seconds": common.median(sensor_secs),
        "latest": latest,
        "burst": burst,
        "all": everything,
        "all_entries": total,
    }


def logs_requests(emulator: Any, export_id: str) -> int:
    return int(emulator.count("GET", rf"/batch_exports/{re.escape(export_id)}/logs/?$"))


def backlog(emulator: Any, count: int) -> tuple[str, Any]:
    """An export with ``count`` entries logged over the last 10 minutes; the instant before."""
    export_id = emulator.create_batch_export(name=f"backlog {count}", interval="hour")["id"]
    start = emulator.now() - timedelta(minutes=10)
    step = timedelta(minutes=10) / count
    emulator.add_logs(
        export_id,
        ((start + (i + 1) * step, "INFO", f"backlog line {i}") for i in range(count)),
    )
    return export_id, start


def catch_up_sensor(count: int) -> tuple[int, int]:
    """Requests and entries echoed for one poke (poke mode) over a backlog."""
    from airflow_provider_posthog_bx.sensors.logs import BatchExportLogsSensor
    from airflow_provider_posthog_bx.testing import PostHogEmulator

    with PostHogEmulator(host=common.HOST, rate_limit=None) as emulator:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = connection_env(emulator)
        export_id, start = backlog(emulator, count)
        sensor = BatchExportLogsSensor(
            task_id="catch_up",
            batch_export_id=export_id,
            search="a message that never comes",
            after=start.isoformat(),
            posthog_conn_id=CONN_ID,
        )
        echoed: list[int] = []
        sensor._echo = lambda entries: echoed.append(len(entries))  # type: ignore[method-assign]
        sensor._cursor = sensor._first_cursor()
        assert sensor.poke({}) is False
        return logs_requests(emulator, export_id), sum(echoed)


def catch_up_trigger(count: int) -> tuple[int, int, int, int]:
    """Requests, entries read, events and the largest event (bytes) for the logs trigger to
    read a backlog, re-deferring (as the sensor does) after every progress event."""
    from airflow_provider_posthog_bx.core.logs import LogCursor
    from airflow_provider_posthog_bx.testing import PostHogEmulator
    from airflow_provider_posthog_bx.triggers.logs import BatchExportLogsTrigger

    with PostHogEmulator(host=common.HOST, rate_limit=None) as emulator:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = connection_env(emulator)
        export_id, start = backlog(emulator, count)
        cursor = LogCursor.newer_than(start).to_json()
        read = events = largest = 0

        async def first_event(trigger: Any) -> dict[str, Any]:
            runner = trigger.run()
            try:
                event = await runner.__anext__()
            finally:
                await runner.aclose()
            return dict(event.payload)

        while read < count:
            trigger = BatchExportLogsTrigger(
                posthog_conn_id=CONN_ID,
                project_id=emulator.project_id,
                batch_export_id=export_id,
                cursor=cursor,
                search="a message that never comes",
                poll_interval=0.01,
                progress_interval=0,
                deadline=time.time() + 600,
            )
            event = asyncio.run(first_event(trigger))
            events += 1
            largest = max(largest, len(json.dumps(event)))
            got = len(event["entries"]) if "entries" in event else int(event.get("read", 0))
            if event["status"] != "progress" or got == 0:
                break
            read += got
            cursor = event["cursor"]
        return logs_requests(emulator, export_id), read, events, largest


def late_entries(count: int) -> tuple[int, int]:
    """Of ``count`` entries that become visible after a newer one was read (timestamps up to
    2 minutes older), how many the next poke finds; and its requests."""
    from airflow_provider_posthog_bx.sensors.logs import BatchExportLogsSensor
    from airflow_provider_posthog_bx.testing import PostHogEmulator

    with PostHogEmulator(host=common.HOST, rate_limit=None) as emulator:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = connection_env(emulator)
        export_id = emulator.create_batch_export(name="late", interval="hour")["id"]
        newest = emulator.now()
        start = newest - timedelta(minutes=3)
        emulator.add_log(export_id, "the newer entry, read first", timestamp=newest)
        sensor = BatchExportLogsSensor(
            task_id="late",
            batch_export_id=export_id,
            search="a message that never comes",
            after=start.isoformat(),
            posthog_conn_id=CONN_ID,
        )
        echoed: list[int] = []
        sensor._echo = lambda entries: echoed.append(len(entries))  # type: ignore[method-assign]
        sensor._cursor = sensor._first_cursor()
        assert sensor.poke({}) is False
        emulator.add_logs(
            export_id,
            (
                (newest - timedelta(seconds=120) * (i + 1) / count, "INFO", f"late entry {i}")
                for i in range(count)
            ),
        )
        echoed.clear()
        before = logs_requests(emulator, export_id)
        assert sensor.poke({}) is False
        return sum(echoed), logs_requests(emulator, export_id) - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=1000, help="smallest log volume")
    parser.add_argument("--new", type=int, default=20, help="entries arriving between pokes")
    parser.add_argument("--pokes", type=int, default=5, help="measured pokes per volume")
    parser.add_argument("--burst", type=int, default=1200, help="new entries in the burst poke")
    parser.add_argument(
        "--backlog", default="20000,50000", help="backlog sizes for the catch-up figures"
    )
    parser.add_argument("--late", type=int, default=100, help="late-visible entries")
    parser.add_argument("--quick", action="store_true", help="base 500, 3 pokes, backlog 20,000")
    args = parser.parse_args()
    if args.quick:
        args.base, args.pokes, args.backlog = 500, 3, "20000"

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-home-"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"  # the sensor echoes every entry
    logging.getLogger("airflow_provider_posthog_bx").setLevel(logging.ERROR)
    logging.getLogger("airflow.task.operators").setLevel(logging.ERROR)
    meter = Meter()
    meter.install()

    print(f"machine: {common.machine()}")
    print(
        f"{args.new} new entries between pokes; medians of {args.pokes} pokes; "
        f"emulator in-process (seconds are indicative only)"
    )
    print()
    rows = [measure(args.base * f, args, meter) for f in (1, 10, 100)]
    print(
        f"{'log volume':>10} | {'sensor req/poke':>15} {'bytes/poke':>10} {'s/poke':>7} | "
        f"{'latest page: req':>16} {'bytes':>9} | {'re-read all: req':>16} {'bytes':>11}"
    )
    for r in rows:
        print(
            f"{r['volume']:>10,} | {r['sensor_requests']:>15g} {r['sensor_bytes']:>10,.0f} "
            f"{r['sensor_seconds']:>7.3f} | {r['latest'][0]:>16} {r['latest'][1]:>9,} | "
            f"{r['all'][0]:>16} {r['all'][1]:>11,}"
        )
    base = rows[0]
    print()
    for r in rows[1:]:
        factor = r["volume"] // base["volume"]
        print(
            f"volume x{factor}: sensor bytes/poke x{r['sensor_bytes'] / base['sensor_bytes']:.2f}, "
            f"requests/poke x{r['sensor_requests'] / base['sensor_requests']:.2f}; "
            f"re-read-all bytes x{r['all'][1] / base['all'][1]:.1f}"
        )
    burst = rows[-1]["burst"]
    print(
        f"burst of {args.burst} new entries in one poke (largest volume): sensor {burst[0]} "
        f"requests, {burst[1]:,} bytes (the latest page alone would miss {args.burst - PAGE})"
    )
    print(
        f"first poke (cursor at 'now', nothing new yet): {rows[-1]['first'][0]} request(s), "
        f"{rows[-1]['first'][1]:,} bytes at the largest volume"
    )
    print()
    print("catch-up of a backlog (requests vs the minimum, ceil(entries / 500)):")
    for count in (int(n) for n in args.backlog.split(",") if n):
        minimum = math.ceil(count / PAGE)
        requests, echoed = catch_up_sensor(count)
        print(
            f"  {count:>7,} entries, sensor (one poke):  {requests:>5} requests "
            f"(x{requests / minimum:.2f} of {minimum}), {echoed:,} echoed"
        )
        requests, read, events, largest = catch_up_trigger(count)
        print(
            f"  {count:>7,} entries, trigger:            {requests:>5} requests "
            f"(x{requests / minimum:.2f} of {minimum}), {read:,} read, {events} event(s), "
            f"largest event {largest:,} bytes"
        )
    found, requests = late_entries(args.late)
    print(
        f"late entries: {found} of {args.late} found by the next poke ({requests} requests); "
        "they became visible after a newer entry was read, up to 2 min older than it"
    )
    print(f"load average at the end: {common.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
