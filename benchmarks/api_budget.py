"""API budget: requests per backfill wait, and 2,000 waits on one key against PostHog's limits.

PostHog throttles a personal API key at 480 requests/minute and 4,800/hour. The triggers of one
triggerer share a per-key RequestBudget (default 60/minute, burst 20), handed out first come
first served, so many waits on one key stretch their polls evenly instead of drawing 429s.

Time is compressed by ``--scale k`` (default 60: one real minute lasts one second), and every
rate with it: the emulator's throttle windows are 60/k s and 3600/k s for the same 480 and
4,800 requests; the budget is 60·k/minute (the default, sped up); the poll interval is 30/k s
(the operator's default 30 s); each hourly backfill run takes 600/k s (10 real minutes).
Counts (the burst of 20, the limits of 480 and 4,800) are not scaled. Figures are printed both
in benchmark seconds and in real-time equivalents (x k).

Scenarios, each in a fresh event loop against a fresh emulator process (127.0.0.1 only):

1. ``light``: 20 waits on 10-30 minute backfills (not enough to fill the budget): requests
   per finished wait versus duration / poll_interval (target: at most
   1.1 x duration/poll_interval + 3).
2. ``budget``: 2,000 waits deferring at once on one key, with the budget: zero 429s expected,
   every wait completes; per-wait request counts, gaps between a wait's polls, durations.
3. ``control``: the same 2,000 waits with the budget set far above PostHog's limit, for a
   bounded time: 429s appear, which is why the budget exists.

4. ``exports``: the same N waits spread over ``--exports`` exports (default 10), twice: with
   the waits on one export sharing one backfill listing per poll round (the provider's
   behaviour, ``AsyncPostHogHook.get_backfill_shared``), then with every wait polling its own
   backfill; the event latency p95 in poll intervals is the figure to compare.
5. ``runs``: N run waits (``BatchExportRunTrigger``) over ``--exports`` exports, each on its
   own hourly interval, whose run is Running for 10-60 real minutes (like the backfills), twice:
   sharing one run listing of the union of the intervals per export and round
   (``AsyncPostHogHook.list_runs_shared``), then each wait listing its own interval. The notice
   delay is the event's time after the run's ``finished_at``.
6. ``logs``: N log waits (``BatchExportLogsTrigger``) over ``--exports`` exports, each waiting
   for its own line, logged 10-60 real minutes in, among a line of chatter every 2 real minutes
   per export (look-back 5 real minutes), twice: sharing one read of the export's logs per
   round (``AsyncPostHogHook.get_logs_shared``), then each wait reading its own. The notice
   delay is the event's time after the line's timestamp (when it became visible).

    python benchmarks/api_budget.py             # k = 60, N = 2000
    python benchmarks/api_budget.py --quick     # N = 500, shorter backfills
    python benchmarks/api_budget.py --only runs --n 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

CONN_ID = "posthog_budget_bench"
PH_BURST, PH_SUSTAINED = 480, 4800  # PostHog: per 60 s and per 3600 s, per key
DEFAULT_PER_MINUTE = 60.0  # hooks/budget.py DEFAULT_REQUESTS_PER_MINUTE (checked below)


def connect(emulator: common.Emulator, per_minute: float) -> None:
    """Point ``CONN_ID`` at the emulator with a request budget of ``per_minute``."""
    conn = {
        "conn_type": "posthog",
        "host": emulator.url,
        "password": emulator.api_key,
        "extra": {"project_id": emulator.project_id, "trigger_requests_per_minute": per_minute},
    }
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(conn)


def run_waits(
    emulator: common.Emulator,
    waits: list[tuple[str, str]],
    *,
    per_minute: float,
    poll_interval: float,
    stop_after: float,
    shared: bool = True,
) -> dict[str, Any]:
    """Run one BatchExportBackfillTrigger per (export, backfill) in a fresh event loop, as the
    triggerer does, recording every HTTP send (time, backfill, status).

    :param shared: waits on one export share one listing a round (the provider's behaviour);
        False makes every wait poll its own backfill, the comparison.
    """
    ids = [backfill for _, backfill in waits]
    connect(emulator, per_minute)

    from airflow_provider_posthog_bx.hooks import posthog_async
    from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook
    from airflow_provider_posthog_bx.triggers.backfill import BatchExportBackfillTrigger

    sends: dict[str, list[tuple[float, int]]] = {b: [] for b in ids}
    statuses: dict[int, int] = {}
    original_send = AsyncPostHogHook._send

    listings: list[tuple[float, float]] = []  # (sent, answered) of each backfill-list page

    async def recording_send(self: Any, request: Any) -> Any:
        at = time.monotonic()
        outcome = await original_send(self, request)
        status = getattr(outcome, "status", 0)
        statuses[status] = statuses.get(status, 0) + 1
        backfill_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        if backfill_id in sends:
            sends[backfill_id].append((at, status))
        elif backfill_id == "backfills":
            listings.append((at, time.monotonic()))
        return outcome

    AsyncPostHogHook._send = recording_send  # type: ignore[method-assign]
    original_shared = AsyncPostHogHook.get_backfill_shared
    if not shared:

        async def own_poll(self: Any, export: str, backfill: str, *, max_age: float) -> Any:
            return await self.get_backfill(export, backfill)

        AsyncPostHogHook.get_backfill_shared = own_poll  # type: ignore[method-assign]
    started: dict[str, float] = {}
    ended: dict[str, tuple[float, float, dict[str, Any]]] = {}

    async def one(export_id: str, backfill_id: str) -> None:
        made = BatchExportBackfillTrigger(
            posthog_conn_id=CONN_ID,
            project_id=None,
            batch_export_id=export_id,
            backfill_id=backfill_id,
            poll_interval=poll_interval,
            not_found_until=time.time() + 3600,
        )
        _, kwargs = made.serialize()
        trigger = type(made)(**json.loads(json.dumps(kwargs)))
        started[backfill_id] = time.monotonic()
        async for event in trigger.run():
            ended[backfill_id] = (time.monotonic(), time.time(), event.payload)
            break

    async def main() -> float:
        began = time.monotonic()
        tasks = [asyncio.create_task(one(e, b)) for e, b in waits]
        _, pending = await asyncio.wait(tasks, timeout=stop_after)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await posthog_async.shared_client().aclose()
        return time.monotonic() - began

    try:
        wall = asyncio.run(main())
    finally:
        AsyncPostHogHook._send = original_send  # type: ignore[method-assign]
        AsyncPostHogHook.get_backfill_shared = original_shared  # type: ignore[method-assign]
    return {
        "sends": sends,
        "statuses": statuses,
        "started": started,
        "ended": ended,
        "wall": wall,
        "listings": listings,
    }


def max_in_window(times: list[float], window: float) -> int:
    """Most requests inside any sliding window of ``window`` seconds."""
    best, left = 0, 0
    for right, t in enumerate(times):
        while t - times[left] >= window:
            left += 1
        best = max(best, right - left + 1)
    return best


def summarize(name: str, run: dict[str, Any], n: int, p: float, k: float) -> dict[str, Any]:
    sends, ended, started = run["sends"], run["ended"], run["started"]
    finals = {b: e for b, e in ended.items() if e[2].get("status") == "final"}
    errors = {b: e for b, e in ended.items() if e[2].get("status") != "final"}
    per_wait = [len(sends[b]) for b in sends]
    gaps = []
    mean_gaps = []
    over_target = 0
    worst_ratio = 0.0
    latencies = []
    for b, times in sends.items():
        stamps = [t for t, _ in times]
        if len(stamps) > 1:
            g = [stamps[i + 1] - stamps[i] for i in range(len(stamps) - 1)]
            gaps.extend(g)
            mean_gaps.append(sum(g) / len(g))
        if b in finals:
            duration = finals[b][0] - started[b]
            allowed = 1.1 * duration / p + 3
            over_target += len(stamps) > allowed
            worst_ratio = max(worst_ratio, len(stamps) / max(1e-9, duration / p))
            finished = common.parse_time(finals[b][2]["backfill"].get("finished_at"))
            if finished is not None:
                latencies.append(finals[b][1] - finished)
    all_times = sorted(
        [t for times in sends.values() for t, _ in times] + [t for t, _ in run["listings"]]
    )
    throttled = run["statuses"].get(429, 0)
    total = sum(run["statuses"].values())
    first_429 = min((t for times in sends.values() for t, s in times if s == 429), default=None)
    t0 = min(started.values(), default=0.0)
    return {
        "name": name,
        "n": n,
        "finished": len(finals),
        "errors": len(errors),
        "error_examples": sorted({str(e[2].get("message"))[:160] for e in errors.values()})[:2],
        "requests": total,
        "statuses": run["statuses"],
        "throttled": throttled,
        "first_429_after": None if first_429 is None else first_429 - t0,
        "per_wait": per_wait,
        "max_gap": max(gaps, default=float("nan")),
        "mean_gaps": mean_gaps,
        "over_target": over_target,
        "worst_ratio": worst_ratio,
        "latencies": latencies,
        "wall": run["wall"],
        "rps": total / run["wall"] if run["wall"] else float("nan"),
        "window_burst": max_in_window(all_times, 60 / k),
        "window_sustained": max_in_window(all_times, 3600 / k),
        "listing_pages": len(run["listings"]),
        "listing_seconds": [done - sent for sent, done in run["listings"]],
    }


def show(s: dict[str, Any], p: float, k: float) -> None:
    pw = s["per_wait"]
    print(f"[{s['name']}] {s['n']} waits, poll interval {p:g} s (= {p * k:g} s real)")
    print(
        f"  finished {s['finished']}/{s['n']}, error events {s['errors']}, "
        f"wall {s['wall']:.1f} s (= {s['wall'] * k / 60:.0f} real minutes)"
    )
    for example in s["error_examples"]:
        print(f"    e.g. {example}")
    print(
        f"  requests {s['requests']} ({s['rps']:.1f}/s = {s['rps'] * 60 / k:.0f}/real minute), "
        f"status counts {dict(sorted(s['statuses'].items()))}"
    )
    first = s["first_429_after"]
    print(
        f"  429 throttled: {s['throttled']}"
        + ("" if first is None else f" (first after {first:.1f} s = {first * k / 60:.1f} real min)")
    )
    print(
        f"  most requests in any {60 / k:g} s window {s['window_burst']} (PostHog allows "
        f"{PH_BURST}); in any {3600 / k:g} s window {s['window_sustained']} (allows {PH_SUSTAINED})"
    )
    if pw:
        print(
            f"  requests per wait min/median/max {min(pw)}/{common.median(pw):g}/{max(pw)}; "
            f"max gap between one wait's polls {s['max_gap']:.2f} s (= "
            f"{s['max_gap'] * k / 60:.1f} real min)"
        )
    if s["listing_pages"]:
        took = s["listing_seconds"]
        print(
            f"  shared listings: {s['listing_pages']} pages, answered in p50/p95 "
            f"{common.percentile(took, 50) * 1000:.0f}/{common.percentile(took, 95) * 1000:.0f} ms "
            "(budget wait and server time)"
        )
    mg = s["mean_gaps"]
    if mg:
        print(
            f"  mean gap per wait min/median/max {min(mg):.2f}/{common.median(mg):.2f}/"
            f"{max(mg):.2f} s"
        )
    lat = s["latencies"]
    if lat:
        print(
            f"  event latency after finished_at p50/p95/max {common.percentile(lat, 50):.2f}/"
            f"{common.percentile(lat, 95):.2f}/{max(lat):.2f} s (= {max(lat) * k / 60:.1f} real "
            f"min max); p95 = {common.percentile(lat, 95) / p:.2f} poll intervals"
        )
    if s["finished"]:
        print(
            f"  requests vs duration/poll_interval: worst ratio {s['worst_ratio']:.2f}; waits over "
            f"1.1 x duration/poll_interval + 3: {s['over_target']}"
        )


def scenario(
    name: str,
    n: int,
    k: float,
    hours: list[int],
    *,
    budget_per_minute: float,
    stop_after: float,
    exports: int = 1,
    shared: bool = True,
) -> dict[str, Any]:
    p = 30 / k
    with (
        tempfile.TemporaryDirectory() as tmp,
        common.start_custom_emulator(
            Path(tmp),
            window_scale=k,
            rate_limit=[PH_BURST, PH_SUSTAINED],
            max_concurrent_backfills=n + 10,
            backfill_create_delay=30 / k,
            backfill_starting_seconds=60 / k,
            run_seconds=600 / k,
            exports=exports,
        ) as emulator,
    ):
        waits: list[tuple[str, str]] = []
        for index, export in enumerate(emulator.batch_export_ids):
            mine = hours[index :: len(emulator.batch_export_ids)]
            made = common.create_backfills(emulator, mine, threads=16, batch_export_id=export)
            waits += [(export, backfill) for backfill in made]
        run = run_waits(
            emulator,
            waits,
            per_minute=budget_per_minute,
            poll_interval=p,
            stop_after=stop_after,
            shared=shared,
        )
    summary = summarize(name, run, n, p, k)
    summary["load"] = common.load_average()
    show(summary, p, k)
    print(f"  load average at the end: {summary['load']}")
    print()
    return summary


# -- run waits and log waits ------------------------------------------------------------------


def drive(triggers: list[Any], stop_after: float, shared: bool, kind: str) -> dict[str, Any]:
    """Run the triggers in one fresh event loop, as the triggerer does, recording every HTTP
    send (time, status) and each trigger's event (monotonic and wall time, payload).

    :param shared: the waits on one export share one read a round (the provider's
        behaviour); False makes every wait send its own request, the comparison.
    :param kind: ``"runs"`` or ``"logs"``: which shared read ``shared=False`` replaces.
    """
    from airflow_provider_posthog_bx.core import runs
    from airflow_provider_posthog_bx.hooks import posthog_async
    from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

    sends: list[tuple[float, int]] = []
    statuses: dict[int, int] = {}
    original_send = AsyncPostHogHook._send
    originals = {
        "list_runs_shared": AsyncPostHogHook.list_runs_shared,
        "get_logs_shared": AsyncPostHogHook.get_logs_shared,
    }

    async def recording_send(self: Any, request: Any) -> Any:
        at = time.monotonic()
        outcome = await original_send(self, request)
        status = getattr(outcome, "status", 0)
        statuses[status] = statuses.get(status, 0) + 1
        sends.append((at, status))
        return outcome

    async def own_runs(self: Any, export: str, start: Any, end: Any, *, max_age: float) -> Any:
        return await self.list_runs(export, **runs.interval_filters(start, end))

    async def own_logs(
        self: Any, export: str, after: Any, before: Any = None, limit: int = 50, **_: Any
    ) -> Any:
        return await self.get_logs(export, after=after, before=before, limit=limit)

    AsyncPostHogHook._send = recording_send  # type: ignore[method-assign]
    if not shared and kind == "runs":
        AsyncPostHogHook.list_runs_shared = own_runs  # type: ignore[method-assign]
    if not shared and kind == "logs":
        AsyncPostHogHook.get_logs_shared = own_logs  # type: ignore[method-assign]
    ended: dict[int, tuple[float, float, dict[str, Any]]] = {}

    async def one(index: int, trigger: Any) -> None:
        async for event in trigger.run():
            ended[index] = (time.monotonic(), time.time(), event.payload)
            break

    async def main() -> float:
        began = time.monotonic()
        tasks = [asyncio.create_task(one(i, t)) for i, t in enumerate(triggers)]
        _, pending = await asyncio.wait(tasks, timeout=stop_after)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await posthog_async.shared_client().aclose()
        return time.monotonic() - began

    try:
        wall = asyncio.run(main())
    finally:
        AsyncPostHogHook._send = original_send  # type: ignore[method-assign]
        for name, method in originals.items():
            setattr(AsyncPostHogHook, name, method)
    return {"sends": sends, "statuses": statuses, "ended": ended, "wall": wall}


def poll_scenario(
    kind: str, n: int, k: float, max_hours: int, exports: int, *, shared: bool, per_minute: float
) -> dict[str, Any]:
    """N run waits or N log waits over ``exports`` exports (wait i on export i % exports),
    each done after 1..max_hours x 10 real minutes; the figures of one run."""
    from airflow_provider_posthog_bx.core.logs import LogCursor
    from airflow_provider_posthog_bx.core.time import format_instant
    from airflow_provider_posthog_bx.triggers.logs import BatchExportLogsTrigger
    from airflow_provider_posthog_bx.triggers.run import BatchExportRunTrigger

    p = 30 / k
    done_after = [(1 + i % max_hours) * 600 / k for i in range(n)]
    longest = max(done_after, default=0.0)
    seed: dict[str, list[list[Any]]] = {}
    if kind == "runs":
        seed["runs"] = [[i % exports, i // exports, done_after[i]] for i in range(n)]
    else:
        chatter = [
            [e, t * 120 / k, "INFO", f"chatter {t}"]
            for e in range(exports)
            for t in range(1, int(longest / (120 / k)) + 2)
        ]
        # Each wait's line, a millisecond apart within its export and group.
        lines = [
            [i % exports, done_after[i] + i // exports / 1000, "INFO", f"wait {i} done."]
            for i in range(n)
        ]
        seed["logs"] = chatter + lines
    with (
        tempfile.TemporaryDirectory() as tmp,
        common.start_custom_emulator(
            Path(tmp),
            window_scale=k,
            rate_limit=[PH_BURST, PH_SUSTAINED],
            exports=exports,
            seed=seed,
        ) as emulator,
    ):
        connect(emulator, per_minute)
        assert emulator.seeded_at is not None
        base = {
            "posthog_conn_id": CONN_ID,
            "project_id": None,
            "poll_interval": p,
        }
        triggers: list[Any] = []
        top = emulator.seeded_at.replace(minute=0, second=0, microsecond=0)
        cursor = LogCursor.newer_than(emulator.seeded_at - timedelta(seconds=1)).to_json()
        for i in range(n):
            export = emulator.batch_export_ids[i % exports]
            if kind == "runs":
                end = top - timedelta(hours=i // exports)
                made: Any = BatchExportRunTrigger(
                    **base,
                    batch_export_id=export,
                    data_interval_start=format_instant(end - timedelta(hours=1)),
                    data_interval_end=format_instant(end),
                )
            else:
                made = BatchExportLogsTrigger(
                    **base,
                    batch_export_id=export,
                    cursor=cursor,
                    search=f"wait {i} done.",
                    fail_on_error=False,
                    look_back=300 / k,
                    progress_interval=1e9,
                )
            _, kwargs = made.serialize()
            triggers.append(type(made)(**json.loads(json.dumps(kwargs))))
        round_trip = n / (per_minute / 60)
        run = drive(triggers, longest + 2 * round_trip + 30, shared, kind)
    label = {"runs": "run waits", "logs": "log waits"}[kind]
    how = {"runs": "shared run listings", "logs": "shared log reads"}[kind]
    summary = poll_summary(
        f"{n} {label}, {exports} exports, {how if shared else 'per-wait requests'}",
        run,
        n,
        kind,
    )
    summary["load"] = common.load_average()
    show_polls(summary, p, k, per_minute)
    print(f"  load average at the end: {summary['load']}")
    print()
    return summary


def poll_summary(name: str, run: dict[str, Any], n: int, kind: str) -> dict[str, Any]:
    good = "final" if kind == "runs" else "match"
    finals = {i: e for i, e in run["ended"].items() if e[2].get("status") == good}
    errors = {i: e for i, e in run["ended"].items() if e[2].get("status") != good}
    latencies = []
    for _, wall, payload in finals.values():
        if kind == "runs":
            done = common.parse_time(payload["run"].get("finished_at"))
            ok = payload["run"].get("status") == "Completed"
        else:
            done = common.parse_time(payload["entry"].get("timestamp"))
            ok = True
        if done is not None and ok:
            latencies.append(wall - done)
    times = sorted(t for t, _ in run["sends"])
    total = sum(run["statuses"].values())
    return {
        "name": name,
        "n": n,
        "finished": len(finals),
        "errors": len(errors),
        "error_examples": sorted({str(e[2].get("message"))[:160] for e in errors.values()})[:2],
        "requests": total,
        "statuses": run["statuses"],
        "throttled": run["statuses"].get(429, 0),
        "wall": run["wall"],
        "rps": total / run["wall"] if run["wall"] else float("nan"),
        "times": times,
        "latencies": latencies,
    }


def show_polls(s: dict[str, Any], p: float, k: float, per_minute: float) -> None:
    print(f"[{s['name']}] poll interval {p:g} s (= {p * k:g} s real)")
    print(
        f"  finished {s['finished']}/{s['n']}, error events {s['errors']}, "
        f"wall {s['wall']:.1f} s (= {s['wall'] * k / 60:.0f} real minutes)"
    )
    for example in s["error_examples"]:
        print(f"    e.g. {example}")
    budget = per_minute / k
    print(
        f"  requests {s['requests']} ({s['rps'] * 60 / k:.0f}/real minute; budget {budget:g}), "
        f"status counts {dict(sorted(s['statuses'].items()))}; 429 throttled: {s['throttled']}"
    )
    print(
        f"  most requests in any {60 / k:g} s window {max_in_window(s['times'], 60 / k)} "
        f"(PostHog allows {PH_BURST}); in any {3600 / k:g} s window "
        f"{max_in_window(s['times'], 3600 / k)} (allows {PH_SUSTAINED})"
    )
    lat = s["latencies"]
    if lat:
        p50, p95 = common.percentile(lat, 50), common.percentile(lat, 95)
        print(
            f"  notice delay p50/p95/max {p50:.2f}/{p95:.2f}/{max(lat):.2f} s (= "
            f"{p95 * k / 60:.1f} real min p95); p95 = {p95 / p:.2f} poll intervals"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=60.0, help="time compression factor k")
    parser.add_argument("--n", type=int, default=2000, help="waits in the budget/control runs")
    parser.add_argument("--light-n", type=int, default=20, help="waits in the light run")
    parser.add_argument("--max-hours", type=int, default=6, help="hourly runs per backfill: 1..")
    parser.add_argument("--control-seconds", type=float, default=45.0)
    parser.add_argument("--quick", action="store_true", help="N=500, backfills of 1..3 runs")
    parser.add_argument(
        "--only", choices=["light", "budget", "control", "exports", "runs", "logs"], default=None
    )
    parser.add_argument(
        "--exports", type=int, default=10, help="exports in the exports, runs and logs runs"
    )
    args = parser.parse_args()
    if args.quick:
        args.n, args.max_hours, args.control_seconds = 500, 3, 30.0

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-home-"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # One line per poll and per throttled retry would bury the figures (thousands of them).
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"
    import logging

    from airflow_provider_posthog_bx.hooks import budget

    logging.getLogger("airflow_provider_posthog_bx").setLevel(logging.ERROR)

    if budget.DEFAULT_REQUESTS_PER_MINUTE != DEFAULT_PER_MINUTE:
        print(f"note: the budget default is now {budget.DEFAULT_REQUESTS_PER_MINUTE}/minute")
    per_minute = budget.DEFAULT_REQUESTS_PER_MINUTE
    k = args.scale
    print(f"machine: {common.machine()}")
    print(
        f"time scale k = {k:g}: PostHog limits {PH_BURST}/{60 / k:g} s and "
        f"{PH_SUSTAINED}/{3600 / k:g} s; budget {per_minute:g}/min x {k:g} = "
        f"{per_minute * k / 60:g} requests/s, burst {budget.DEFAULT_BURST}; poll interval "
        f"{30 / k:g} s; hourly run {600 / k:g} s; backfills of 1..{args.max_hours} runs "
        "(light: 1..3)"
    )
    print()
    spread = [1 + i % args.max_hours for i in range(max(args.n, args.light_n))]
    # Longest backfill plus one full round of the budget queue, plus slack.
    longest = (30 + 60 + 600 * args.max_hours) / k
    results = []
    if args.only in (None, "light"):
        results.append(
            scenario(
                "light",
                args.light_n,
                k,
                [1 + i % 3 for i in range(args.light_n)],  # 10 to 30 real minutes
                budget_per_minute=per_minute * k,
                stop_after=(30 + 60 + 600 * 3) / k + 30,
            )
        )
    if args.only in (None, "budget"):
        round_trip = args.n / (per_minute * k / 60)
        results.append(
            scenario(
                "budget",
                args.n,
                k,
                spread[: args.n],
                budget_per_minute=per_minute * k,
                stop_after=longest + 2 * round_trip + 30,
            )
        )
    if args.only in (None, "exports"):
        # The same N waits spread over several exports: shared listings, then per-wait polls.
        round_trip = args.n / (per_minute * k / 60)
        for shared in (True, False):
            results.append(
                scenario(
                    f"{args.exports} exports, {'shared listings' if shared else 'per-wait polls'}",
                    args.n,
                    k,
                    spread[: args.n],
                    budget_per_minute=per_minute * k,
                    stop_after=longest + 2 * round_trip + 30,
                    exports=args.exports,
                    shared=shared,
                )
            )
    for kind in ("runs", "logs"):
        if args.only in (None, kind):
            # Run waits, then log waits, over several exports: shared reads, then per-wait.
            for shared in (True, False):
                results.append(
                    poll_scenario(
                        kind,
                        args.n,
                        k,
                        args.max_hours,
                        args.exports,
                        shared=shared,
                        per_minute=per_minute * k,
                    )
                )
    if args.only in (None, "control"):
        results.append(
            scenario(
                "control (no budget)",
                args.n,
                k,
                spread[: args.n],
                budget_per_minute=1e9,
                stop_after=args.control_seconds,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
