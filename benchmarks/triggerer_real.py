"""A real ``airflow triggerer`` at scale: N deferred backfill tasks next to Airflow's floor.

One Airflow 3 deployment for the whole run, started here on 127.0.0.1: PostgreSQL 15
(``tests/e2e/celery/services.py``, its own data directory), ``airflow db migrate``, then the
api-server, scheduler, dag-processor and ONE triggerer (``[triggerer] capacity`` above the
largest N), LocalExecutor (``--parallelism`` workers), each component its own process group
with a known PID (``tests/e2e/deployment.py``'s ``Deployment``). One PostHog emulator (a
child process, rate limit off; ``_common`` writes its request counts to a file). A DAG folder
written here holds two DAG files, each a small ``plan`` task and one mapped task:

- ``bench_ours``: ``BatchExportBackfillOperator(deferrable=True)`` expanded (``expand_kwargs``)
  over distinct one-hour ranges of one export. Each backfill stays Starting for ``hold``
  seconds after its creation, then runs its one hourly run (``--run-seconds``) and completes.
- ``bench_floor``: ``DateTimeSensorAsync`` (Airflow's ``DateTimeTrigger``), its target rendered
  at task start as now + ``hold``: the cheapest deferred wait, held as long as ours, from the
  same moment (task start). The mapped argument is ``timeout``, which the deferred path does
  not use: it only makes N map indexes.

Two phases, ours then the floor; they never overlap. Each phase restarts the triggerer (the
same single triggerer, a new process), measures it idle ("cold"), then with one deferred
task of its kind ("warm": one-time costs such as imports and the shared HTTP client land
here), then grows the number of deferred tasks level by level (``--n``, e.g. 500, 1000,
2000: one DAG run per level adds the difference). At each level, once every task is
deferred and its trigger assigned: settle, then a window of ``--window`` seconds with RSS
samples (summed over the triggerer's process tree, psutil), the tree's CPU (user + sys) and
the requests the emulator received. After the last level every task completes; completion
latency is the task's ``end_date`` (metadata database) minus the backfill's ``finished_at``
(emulator) for ours, minus the rendered target time for the floor; it is split at the
trigger's "Trigger fired event" log line into noticing and resuming. Nothing asserts on
timings; the script prints figures and ratios.

The provider's connection is ``posthog_bench`` (in the metadata database), with the default
trigger request budget (60/min) and the operator's default poll interval (30 s).

    .venv/af3/bin/python benchmarks/triggerer_real.py            # levels N = 500, 1000, 2000
    .venv/af3/bin/python benchmarks/triggerer_real.py --quick    # levels N = 20, 50
    .venv/af3/bin/python benchmarks/triggerer_real.py --n 500 --only ours
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as common

CONN_ID = "posthog_bench"
COMMON_DAG_ARGS = """
from datetime import datetime

COMMON = dict(schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
              max_active_tasks=100000, max_active_runs=16)
"""
OURS_DAG = (
    COMMON_DAG_ARGS
    + """
from airflow.sdk import DAG, task

from airflow_provider_posthog_bx.operators.backfill import BatchExportBackfillOperator

with DAG("bench_ours", **COMMON):

    @task
    def plan(**context):
        # The ranges are built here, from n (as hour_ranges() in the script builds them), not
        # passed in the conf: the triggerer's main process loads the DAG run, conf included,
        # each time it starts triggers, and a conf of N ranges would cost ours O(N) there per
        # load, which the floor's conf (n alone) does not.
        from datetime import timedelta

        conf = context["dag_run"].conf
        base = datetime.fromisoformat(conf["base"].replace("Z", "+00:00"))

        def iso(moment):
            return moment.isoformat().replace("+00:00", "Z")

        return [
            {
                "start_at": iso(base - timedelta(hours=conf["offset"] + i + 1)),
                "end_at": iso(base - timedelta(hours=conf["offset"] + i)),
            }
            for i in range(conf["n"])
        ]

    BatchExportBackfillOperator.partial(
        task_id="wait",
        posthog_conn_id=%(conn_id)r,
        batch_export_id="{{ dag_run.conf['batch_export_id'] }}",
        deferrable=True,
        poll_interval=%(poll)r,
    ).expand_kwargs(plan())
"""
)
FLOOR_DAG = (
    COMMON_DAG_ARGS
    + """
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import DAG, task

HOLD_TARGET = (
    "{{ (macros.datetime.utcnow() + macros.timedelta(seconds=dag_run.conf['hold']))"
    ".isoformat() }}"
)

with DAG("bench_floor", **COMMON):

    @task
    def plan(**context):
        return [86400.0] * int(context["dag_run"].conf["n"])

    DateTimeSensorAsync.partial(task_id="wait", target_time=HOLD_TARGET).expand(timeout=plan())
"""
)
DAG_IDS = {"ours": "bench_ours", "floor": "bench_floor"}
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
FIRED = re.compile(r'"timestamp":"([^"]+)","level":"info","event":"Trigger fired event"')


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())}] {message}", flush=True)


def wait(probe: Any, what: str, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------------------------------------
# The deployment


def _e2e() -> tuple[Any, Any]:
    from tests.e2e.celery.services import Postgres
    from tests.e2e.deployment import Deployment

    return Postgres, Deployment


def make_deployment(home: Path, dags: Path, emulator: Any, postgres: Any, args: Any) -> Any:
    deployment = _e2e()[1](home, emulator)
    deployment.env.update(
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgres.url,
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM=str(args.parallelism),
        AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG="100000",
        AIRFLOW__CORE__MAX_MAP_LENGTH=str(max(1024, 2 * max(args.ns))),
        AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY="512",
        AIRFLOW__TRIGGERER__CAPACITY=str(max(args.ns) + 500),
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="3600",
        AIRFLOW__API__WORKERS=str(args.api_workers),
        # The default pool has 128 slots; deferred tasks do not take one, running ones do.
        AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT="100000",
    )
    return deployment


def set_connection(deployment: Any, emulator: Any) -> None:
    body = {
        "connection_id": CONN_ID,
        "conn_type": "posthog",
        "host": emulator.url,
        "password": emulator.api_key,
        "extra": json.dumps({"project_id": emulator.project_id}),
    }
    response = deployment.client.patch(f"/api/v2/connections/{CONN_ID}", json=body)
    if response.status_code == 404:
        deployment.api("POST", "/connections", expect=201, json=body)
    elif response.status_code != 200:
        raise SystemExit(f"PATCH connection: {response.status_code} {response.text[:500]}")


def restart_triggerer(deployment: Any) -> None:
    """Stop the (only) triggerer and start a new one; wait until it is healthy."""
    old = deployment.current("triggerer")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(old.pid, signal.SIGTERM)
    try:
        old.wait(timeout=30)
    except Exception:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(old.pid, signal.SIGKILL)
        old.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(old.pid, signal.SIGKILL)  # anything its group left behind
    started = time.time()
    deployment.start("triggerer")

    def fresh() -> bool | None:
        deployment.check_alive()
        health = deployment.api("GET", "/monitor/health")["triggerer"]
        beat = common.parse_time(
            (health.get("latest_triggerer_heartbeat") or "").replace("+00:00", "Z")
        )
        ok = health.get("status") == "healthy" and beat is not None and beat > started
        return True if ok and len(tree(deployment.current("triggerer").pid)) >= 2 else None

    wait(fresh, "the new triggerer to be healthy", 120)


# ------------------------------------------------------------------------------------------
# Processes: memory and CPU


def tree(pid: int) -> list[Any]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(pid: int) -> tuple[float, float, list[tuple[str, float]]]:
    """(RSS MiB summed over the process tree, USS MiB summed, [(title, RSS MiB)])."""
    import psutil

    rss = uss = 0.0
    parts = []
    procs = tree(pid)
    for index, proc in enumerate(procs):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            info = proc.memory_full_info()
            rss += info.rss / 2**20
            uss += info.uss / 2**20
            if index == 0:
                title = "triggerer"
            elif proc.cmdline() == procs[0].cmdline():
                title = "trigger runner"  # forked: the same command line
            else:
                title = " ".join(proc.cmdline()[:2])[-24:]
            parts.append((title, info.rss / 2**20))
    return rss, uss, parts


def tree_cpu(pid: int, reaped: bool = False) -> float:
    """User + sys CPU seconds of a live process tree (``reaped``: plus children waited for)."""
    import psutil

    total = 0.0
    for proc in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = proc.cpu_times()
            total += t.user + t.system + ((t.children_user + t.children_system) if reaped else 0)
    return total


def component_cpu(deployment: Any, postgres: Any, emulator: Any) -> dict[str, float]:
    """CPU seconds so far per component; the scheduler's includes the LocalExecutor workers
    and the task processes they ran (reaped children)."""
    found = {c: tree_cpu(deployment.current(c).pid, reaped=True) for c in COMPONENTS}
    found["postgres"] = tree_cpu(postgres.process.pid, reaped=True)
    found["emulator"] = tree_cpu(emulator.pid)
    return found


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}


def samples_rss(pid: int, count: int = 3) -> tuple[float, float]:
    samples = []
    for _ in range(count):
        samples.append(tree_rss(pid)[:2])
        time.sleep(1)
    return common.median([s[0] for s in samples]), common.median([s[1] for s in samples])


# ------------------------------------------------------------------------------------------
# DAG runs


def states(postgres: Any, dag_id: str, run_ids: list[str]) -> dict[str, int]:
    """Task states of the mapped task over these runs, plus ``assigned``: deferred ones whose
    trigger a triggerer has taken."""
    found: dict[str, int] = {}
    for state, n in postgres.query(
        "SELECT coalesce(state, 'none'), count(*) FROM task_instance"
        " WHERE dag_id = %s AND run_id = ANY(%s) AND task_id = 'wait' GROUP BY 1",
        dag_id,
        run_ids,
    ):
        found[str(state)] = int(n)
    assigned = postgres.query(
        "SELECT count(*) FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id"
        " WHERE ti.dag_id = %s AND ti.run_id = ANY(%s) AND ti.state = 'deferred'"
        " AND t.triggerer_id IS NOT NULL",
        dag_id,
        run_ids,
    )
    found["assigned"] = int(assigned[0][0])
    return found


def ranges_base() -> str:
    """Where the ranges of a run go back from: the hour 2 days ago (ISO, ``Z``)."""
    base = datetime.now(common.UTC).replace(minute=0, second=0, microsecond=0)
    return (base - timedelta(days=2)).isoformat().replace("+00:00", "Z")


def hour_ranges(n: int, offset: int, base_iso: str) -> list[dict[str, str]]:
    """``n`` consecutive one-hour ranges going back from ``offset`` hours before ``base_iso``
    (what the ``plan`` task of ``bench_ours`` builds from the run's conf)."""
    base = datetime.fromisoformat(base_iso.replace("Z", "+00:00"))
    ranges = []
    for i in range(n):
        end = base - timedelta(hours=offset + i)
        ranges.append(
            {
                "start_at": (end - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
                "end_at": end.isoformat().replace("+00:00", "Z"),
            }
        )
    return ranges


class Phase:
    """One kind's DAG runs on a freshly started triggerer."""

    def __init__(self, kind: str, ctx: dict[str, Any], args: Any) -> None:
        self.kind = kind
        self.dag_id = DAG_IDS[kind]
        self.ctx = ctx
        self.args = args
        self.deployment = ctx["deployment"]
        self.postgres = ctx["postgres"]
        self.emulator = ctx["emulator"]
        self.runs: list[tuple[str, dict[str, Any]]] = []  # (run id, conf)
        self.notes: list[str] = []
        self.last_print = 0.0

    @property
    def pid(self) -> int:
        return int(self.deployment.current("triggerer").pid)

    def conf(self, n: int) -> dict[str, Any]:
        if self.kind == "floor":
            return {"n": n, "hold": self.ctx["hold"]}
        offset = self.ctx["offset"]
        self.ctx["offset"] += n
        return {
            "n": n,
            "offset": offset,
            "base": ranges_base(),
            "batch_export_id": self.emulator.batch_export_id,
        }

    def add(self, n: int, total: int, deadline: float) -> dict[str, Any]:
        """Trigger a run of ``n`` more tasks; wait until ``total`` are deferred and assigned."""
        cpu0 = component_cpu(self.deployment, self.postgres, self.emulator)
        conf = self.conf(n)
        triggered = time.time()
        run_id = self.deployment.trigger(self.dag_id, conf)
        self.runs.append((run_id, conf))
        run_ids = [r for r, _ in self.runs]
        peak, first = 0, None
        while True:
            self.deployment.check_alive()
            c = states(self.postgres, self.dag_id, run_ids)
            deferred = c.get("deferred", 0)
            peak = max(peak, deferred)
            if deferred and first is None:
                first = time.time()
            self.progress(f"{total} wanted", c, triggered)
            bad = {s: c[s] for s in ("failed", "up_for_retry", "upstream_failed") if c.get(s)}
            if bad:
                self.note(f"while starting to {total}: {bad}")
            if deferred >= total and c["assigned"] >= total:
                break
            # The warm-up task may complete first; any other completing ends the wait.
            done_early = c.get("success", 0) and (
                len(run_ids) == 1
                or states(self.postgres, self.dag_id, run_ids[1:]).get("success", 0)
            )
            if done_early or time.time() > deadline:
                self.note(
                    f"not all {total} deferred at once (peak {peak}, now {c}): the first "
                    "completed or the start deadline passed"
                )
                break
            time.sleep(1)
        done = time.time()
        cpu = cpu_delta(cpu0, component_cpu(self.deployment, self.postgres, self.emulator))
        return {
            "start_seconds": done - triggered,
            "deferred_rate": max(0, peak - (total - n)) / max(1e-9, done - (first or triggered)),
            "start_cpu": {k: v / n for k, v in cpu.items()},
            "peak": peak,
        }

    def window(self, total: int) -> dict[str, Any]:
        args = self.args
        time.sleep(args.settle)
        if self.kind == "floor":
            self.ctx.setdefault("targets", {}).update(floor_targets(self.postgres, self.runs))
        stats = self.ctx["stats"]
        s0, cpu0, w0 = common.read_stats(stats), tree_cpu(self.pid), time.monotonic()
        samples = []
        while time.monotonic() - w0 < args.window:
            samples.append(tree_rss(self.pid))
            time.sleep(min(5.0, max(0.5, args.window - (time.monotonic() - w0))))
        cpu1, w1, s1 = tree_cpu(self.pid), time.monotonic(), common.read_stats(stats)
        c = states(self.postgres, self.dag_id, [r for r, _ in self.runs])
        if c.get("deferred", 0) < total:
            self.note(f"at N={total}, only {c.get('deferred', 0)} deferred after the window")
        dt = max(1e-9, s1.get("t", 0) - s0.get("t", 0))
        return {
            "deferred": c.get("deferred", 0),
            "rss": common.median([s[0] for s in samples]),
            "uss": common.median([s[1] for s in samples]),
            "parts": samples[-1][2] if samples else [],
            "cpu": cpu1 - cpu0,
            "window": w1 - w0,
            "rps": (s1.get("total", 0) - s0.get("total", 0)) / dt,
            "requests": {k: s1.get(k, 0) - s0.get(k, 0) for k in s1 if k not in ("t", "total")},
            "load": common.load_average(),
        }

    def finish(self, deadline: float, runs: int | None = None) -> dict[str, Any]:
        """Wait until the tasks of the first ``runs`` runs (default all) are done."""
        waited = self.runs[:runs] if runs else self.runs
        run_ids = [r for r, _ in waited]
        started = time.time()
        while True:
            self.deployment.check_alive()
            c = states(self.postgres, self.dag_id, run_ids)
            done = sum(c.get(s, 0) for s in ("success", "failed", "upstream_failed", "skipped"))
            self.progress("finishing", c, started)
            if done >= sum(len(self.task_indexes(conf)) for _, conf in waited):
                break
            if time.time() > deadline:
                self.note(f"not all done by the deadline: {c}")
                break
            time.sleep(2)
        return c

    @staticmethod
    def task_indexes(conf: dict[str, Any]) -> range:
        return range(int(conf["n"]))

    def progress(self, what: str, c: dict[str, int], since: float) -> None:
        if time.time() - self.last_print > 20:
            log(f"  {self.kind} ({what}) +{time.time() - since:4.0f} s: {c}")
            self.last_print = time.time()

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            log(f"  {self.kind}: {text}")


def floor_targets(postgres: Any, runs: list[tuple[str, dict[str, Any]]]) -> dict[Any, float]:
    """The floor's rendered target per (run, map index), read while deferred (a resumed task
    renders its templates again)."""
    rows = postgres.query(
        "SELECT run_id, map_index, rendered_fields FROM rendered_task_instance_fields"
        " WHERE dag_id = 'bench_floor' AND run_id = ANY(%s) AND task_id = 'wait'",
        [r for r, _ in runs],
    )
    targets = {}
    for run_id, map_index, fields in rows:
        value = (fields if isinstance(fields, dict) else json.loads(fields)).get("target_time")
        if value:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=common.UTC)
            targets[(run_id, int(map_index))] = moment.timestamp()
    return targets


def list_backfills(emulator: Any) -> list[dict[str, Any]]:
    url: str | None = (
        f"{emulator.url}/api/projects/{emulator.project_id}/batch_exports/"
        f"{emulator.batch_export_id}/backfills/?limit=100"
    )
    found: list[dict[str, Any]] = []
    while url:
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {emulator.setup_key}"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            page = json.loads(response.read())
        found += page.get("results", [])
        url = page.get("next")
    return found


def fired_at(home: Path, dag_id: str, run_id: str, map_index: int) -> float | None:
    """When the trigger of a task fired, from its trigger log."""
    folder = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / "task_id=wait"
    for path in (folder / f"map_index={map_index}").glob("attempt=*.log.trigger.*.log"):
        with contextlib.suppress(OSError):
            found = FIRED.search(path.read_text(errors="replace"))
            if found:
                return common.parse_time(found.group(1))
    return None


def latencies(phase: Phase) -> dict[str, Any]:
    """Completion latency of every task: end_date - due time, split at the trigger's event."""
    due: dict[Any, float] = {}
    if phase.kind == "ours":
        by_start = {}
        for backfill in list_backfills(phase.emulator):
            finished = common.parse_time(backfill.get("finished_at"))
            start = common.parse_time(backfill.get("start_at"))
            if finished is not None and start is not None:
                by_start[round(start)] = finished
        for run_id, conf in phase.runs:
            for i, bounds in enumerate(hour_ranges(conf["n"], conf["offset"], conf["base"])):
                start = common.parse_time(bounds["start_at"])
                if start is not None and round(start) in by_start:
                    due[(run_id, i)] = by_start[round(start)]
    else:
        due = phase.ctx.get("targets", {})
    rows = phase.postgres.query(
        "SELECT run_id, map_index, end_date FROM task_instance WHERE dag_id = %s"
        " AND run_id = ANY(%s) AND task_id = 'wait' AND state = 'success'",
        phase.dag_id,
        [r for r, _ in phase.runs],
    )
    total, notice, resume = [], [], []
    home = phase.deployment.home
    for run_id, map_index, end in rows:
        key = (run_id, int(map_index))
        if key not in due or end is None:
            continue
        total.append(end.timestamp() - due[key])
        fired = fired_at(home, phase.dag_id, run_id, int(map_index))
        if fired is not None:
            notice.append(fired - due[key])
            resume.append(end.timestamp() - fired)

    def pct(values: list[float]) -> dict[str, float]:
        return {
            "p50": common.percentile(values, 50),
            "p95": common.percentile(values, 95),
            "max": max(values, default=float("nan")),
        }

    return {
        "matched": len(total),
        "total": pct(total),
        "notice": pct(notice),
        "resume": pct(resume),
    }


def run_phase(kind: str, ctx: dict[str, Any], args: Any, result: dict[str, Any]) -> None:
    """Run one phase, filling ``result`` as it goes (what is there survives an interrupt)."""
    phase = Phase(kind, ctx, args)
    log(f"{kind}: restarting the triggerer")
    restart_triggerer(phase.deployment)
    time.sleep(args.settle)
    result.update(kind=kind, levels=[], notes=phase.notes)
    result["cold"] = samples_rss(phase.pid)
    # Warm-up: one deferred task of this kind, held like the others.
    deadline = time.time() + ctx["hold"]
    phase.add(1, 1, deadline)
    time.sleep(args.settle)
    result["warm"] = samples_rss(phase.pid)
    result["warm_parts"] = tree_rss(phase.pid)[2]
    # The triggerer's own CPU with 1 deferred task (heartbeats, its DB loop), per second.
    cpu0, w0 = tree_cpu(phase.pid), time.monotonic()
    time.sleep(args.window)
    result["warm_cpu_rate"] = (tree_cpu(phase.pid) - cpu0) / (time.monotonic() - w0)
    log(
        f"{kind}: triggerer RSS cold {result['cold'][0]:.0f} MiB, with 1 deferred "
        f"{result['warm'][0]:.0f} MiB using {result['warm_cpu_rate'] * 100:.1f}% of a core"
    )
    previous = 0
    for level in args.ns:
        started = phase.add(level - previous, level + 1, deadline)
        log(
            f"{kind} N={level}: {started['peak'] - 1} deferred "
            f"{started['start_seconds']:.0f} s after triggering {level - previous} more "
            f"({started['deferred_rate']:.1f}/s)"
        )
        measured = phase.window(level + 1)
        log(
            f"{kind} N={level}: window {measured['window']:.0f} s, RSS {measured['rss']:.0f} "
            f"MiB, CPU {measured['cpu']:.1f} s, {measured['rps']:.2f} req/s"
        )
        result["levels"].append({"n": level, **started, **measured})
        previous = level
    finish_by = deadline + args.finish_slack + 2 * args.ns[-1] / args.start_rate
    cpu0, t0 = component_cpu(phase.deployment, phase.postgres, phase.emulator), time.time()
    # --floor-finish/--ours-finish first: only the warm-up and the first level's runs are
    # waited for (the others stay deferred until the deployment stops).
    first = (args.floor_finish if kind == "floor" else args.ours_finish) == "first"
    runs = 2 if first else None
    result["final"] = phase.finish(finish_by, runs)
    result["finish_cpu"] = cpu_delta(
        cpu0, component_cpu(phase.deployment, phase.postgres, phase.emulator)
    )
    result["finish_seconds"] = time.time() - t0
    result["latency"] = latencies(phase)
    log(f"{kind}: done {result['final']}")


# ------------------------------------------------------------------------------------------
# Output


def per_task(result: dict[str, Any], level: dict[str, Any]) -> dict[str, float]:
    n = max(1, level["deferred"] - 1)  # the warm-up task is in the baseline
    extra_cpu = level["cpu"] - result["warm_cpu_rate"] * level["window"]
    return {
        "kib": (level["rss"] - result["warm"][0]) * 1024 / n,
        "uss_kib": (level["uss"] - result["warm"][1]) * 1024 / n,
        "cpu": extra_cpu / n / level["window"] * 60 * 1000,  # ms per task per minute
    }


def print_results(results: list[dict[str, Any]], hold: float) -> None:
    print()
    print(
        f"{'N':>5} {'wait':<6} {'cold':>5} {'warm':>5} {'warm%':>5} {'withN':>6} {'KiB/t':>6} "
        f"{'USS':>6} {'slope':>6} "
        f"{'CPU s':>6} {'ms/t/min':>8} {'req/s':>6} {'start s':>7} {'defer/s':>7}  load"
    )
    for r in results:
        before = (r["warm"][0], 1)  # (RSS MiB, deferred) at the previous level
        for lv in r.get("levels", []):
            t = per_task(r, lv)
            slope = (lv["rss"] - before[0]) * 1024 / max(1, lv["deferred"] - before[1])
            before = (lv["rss"], lv["deferred"])
            print(
                f"{lv['n']:>5} {r['kind']:<6} {r['cold'][0]:5.0f} {r['warm'][0]:5.0f} "
                f"{r['warm_cpu_rate'] * 100:5.1f} {lv['rss']:6.0f} {t['kib']:6.1f} "
                f"{t['uss_kib']:6.1f} {slope:6.1f} {lv['cpu']:6.1f} "
                f"{t['cpu']:8.2f} {lv['rps']:6.2f} {lv['start_seconds']:7.0f} "
                f"{lv['deferred_rate']:7.1f}  {lv['load']}"
            )
    print()
    for r in results:
        if "latency" not in r:
            print(f"{r['kind']}: interrupted before completion; notes: {r.get('notes')}")
            continue
        lat = r["latency"]
        parts = ", ".join(
            f"{k} p50/p95/max {v['p50']:.1f}/{v['p95']:.1f}/{v['max']:.1f} s"
            for k, v in lat.items()
            if isinstance(v, dict)
        )
        print(f"{r['kind']}: completion latency ({lat['matched']} tasks): {parts}")
        print(f"{r['kind']}: final states {r['final']}")
        for note in r["notes"]:
            print(f"{r['kind']}: note: {note}")
    by = {r["kind"]: r for r in results if r.get("levels")}
    if "ours" in by and "floor" in by:
        print()
        ours, floor = by["ours"], by["floor"]
        for lo, lf in zip(ours["levels"], floor["levels"], strict=False):
            to, tf = per_task(ours, lo), per_task(floor, lf)
            print(
                f"N={lo['n']}: ours/floor: triggerer RSS with N {lo['rss'] / lf['rss']:.2f}x "
                f"({lo['rss']:.0f} / {lf['rss']:.0f} MiB), RSS per task "
                f"{_ratio(to['kib'], tf['kib'])} ({to['kib']:.1f} / {tf['kib']:.1f} KiB), "
                f"CPU per task {_ratio(to['cpu'], tf['cpu'])} "
                f"({to['cpu']:.2f} / {tf['cpu']:.2f} ms per minute)"
            )
        p50 = "n/a"
        if "latency" in ours and "latency" in floor:
            p50 = _ratio(ours["latency"]["total"]["p50"], floor["latency"]["total"]["p50"])
        print(
            f"one-time (warm - cold): ours {ours['warm'][0] - ours['cold'][0]:.0f} MiB, "
            f"floor {floor['warm'][0] - floor['cold'][0]:.0f} MiB; completion latency p50 "
            f"ours/floor {p50}"
        )
    print()
    print(f"hold {hold:.0f} s from each task's start (ours: backfill Starting; floor: target)")
    print("cold/warm/withN: triggerer RSS (MiB, summed over its process tree: the triggerer,")
    print("its trigger runner and log server) freshly started / with 1 deferred task / with N")
    print("(median over the window); KiB/t, USS: (withN - warm) / N, RSS and unshared memory;")
    print("slope: RSS KiB per task added since the previous level (the first: since warm);")
    print("CPU s: user+sys of the tree in the window; ms/t/min: CPU ms per deferred task per")
    print("minute, above the warm triggerer's own rate (warm%); req/s: requests the emulator")
    print("received in the window; start s: from triggering this level's run to all deferred;")
    print("defer/s: deferrals per second.")
    for r in results:
        if r.get("warm_parts"):
            parts = ", ".join(f"{name.strip()}: {mib:.0f}" for name, mib in r["warm_parts"])
            print(f"  {r['kind']} warm: tree (MiB) {parts}")
        for lv in r.get("levels", []):
            parts = ", ".join(f"{name.strip()}: {mib:.0f}" for name, mib in lv["parts"])
            cpu = ", ".join(f"{k} {v * 1000:.0f}" for k, v in lv["start_cpu"].items())
            print(f"  {r['kind']} N={lv['n']}: tree (MiB) {parts}; requests {lv['requests']}")
            print(f"    CPU ms per task started, by component: {cpu}")
        if "finish_cpu" in r:
            cpu = ", ".join(f"{k} {v:.0f}" for k, v in r["finish_cpu"].items())
            print(
                f"  {r['kind']} from the last window until done ({r['finish_seconds']:.0f} s, "
                f"holds ending and tasks resuming): CPU s by component: {cpu}"
            )


def _ratio(a: float, b: float) -> str:
    if not b or math.isnan(a) or math.isnan(b):
        return "n/a"
    return f"{a / b:.2f}x"


# ------------------------------------------------------------------------------------------


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="500,1000,2000", help="levels: deferred tasks at once")
    parser.add_argument("--only", choices=("ours", "floor"), help="run one side only")
    parser.add_argument("--quick", action="store_true", help="levels 20, 50; short window")
    parser.add_argument("--parallelism", type=int, default=8, help="LocalExecutor workers")
    parser.add_argument("--api-workers", type=int, default=1, help="api-server workers")
    parser.add_argument("--poll-interval", type=float, default=30.0, help="ours, seconds")
    parser.add_argument("--window", type=float, default=45.0, help="measurement window, s")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds before measuring")
    parser.add_argument(
        "--start-rate",
        type=float,
        default=3.0,
        help="expected deferrals per second, to size the hold (0 with --hold)",
    )
    parser.add_argument("--hold", type=float, default=0, help="fixed hold, s (0: sized from N)")
    parser.add_argument("--run-seconds", type=float, default=2.0, help="backfill run length")
    parser.add_argument(
        "--floor-finish",
        choices=("all", "first"),
        default="all",
        help="first: wait only for the floor's first level to complete (saves a hold)",
    )
    parser.add_argument(
        "--ours-finish",
        choices=("all", "first"),
        default="all",
        help="first: as --floor-finish, for ours; only with --only ours (a later phase's "
        "triggerer would pick up ours' deferred tasks)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the Airflow home (logs)")
    args = parser.parse_args()
    if args.ours_finish == "first" and args.only != "ours":
        parser.error("--ours-finish first needs --only ours")
    if args.quick:
        args.n, args.window, args.settle = "20,50", 20.0, 5.0
    args.ns = sorted(int(x) for x in args.n.split(",") if x)
    args.finish_slack = 180.0
    kinds = [args.only] if args.only else ["ours", "floor"]
    hold = args.hold or (
        args.ns[-1] / args.start_rate + len(args.ns) * (args.settle + args.window + 10) + 60
    )

    print(f"machine: {common.machine()}")
    print(
        f"Airflow 3 on PostgreSQL, LocalExecutor parallelism {args.parallelism}, one triggerer; "
        f"levels {args.ns}; hold {hold:.0f} s; ours polls every {args.poll_interval:.0f} s; "
        f"window {args.window:.0f} s"
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    home = Path(tempfile.mkdtemp(prefix="bench-triggerer-real-"))
    home.chmod(0o755)  # PostgreSQL's unprivileged user reaches its data directory in it
    dags = home / "dags"
    dags.mkdir()
    values = {"conn_id": CONN_ID, "poll": args.poll_interval}
    (dags / "bench_ours.py").write_text(OURS_DAG % values)
    (dags / "bench_floor.py").write_text(FLOOR_DAG)
    postgres = deployment = emulator = None
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        postgres = _e2e()[0](home)
        postgres.init()
        postgres.start()
        postgres.wait_ready()
        postgres.create_database()
        log(f"PostgreSQL ready on 127.0.0.1:{postgres.port}")
        stats = home / "emulator-stats.json"
        emulator = common.start_custom_emulator(
            home,
            stats_file=stats,
            rate_limit=None,
            max_concurrent_backfills=2 * args.ns[-1] + 100,
            backfill_create_delay=0.5,
            backfill_starting_seconds=hold,
            run_seconds=args.run_seconds,
        )
        log(f"emulator on {emulator.url} (pid {emulator.pid})")
        deployment = make_deployment(home, dags, emulator, postgres, args)
        deployment.migrate()
        for component in COMPONENTS:
            deployment.start(component)
        deployment.wait_healthy()
        deployment.login()
        log(f"Airflow healthy after {time.monotonic() - started:.0f} s")

        def serialised() -> bool | None:
            codes = [
                deployment.client.get(f"/api/v2/dags/{d}").status_code for d in DAG_IDS.values()
            ]
            return True if all(code == 200 for code in codes) else None

        wait(serialised, "the benchmark DAGs to be serialised", 180)
        set_connection(deployment, emulator)
        ctx = {
            "deployment": deployment,
            "postgres": postgres,
            "emulator": emulator,
            "stats": stats,
            "hold": hold,
            "offset": 0,
        }
        for kind in kinds:
            results.append({"kind": kind})
            run_phase(kind, ctx, args, results[-1])
            print_results(results[-1:], hold)
        if len(results) > 1:
            print_results(results, hold)
    except KeyboardInterrupt:
        log("interrupted; what was measured so far:")
        print_results([r for r in results if r.get("levels")], hold)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if deployment is not None:
            strays = deployment.stop()
            if strays:
                print(f"killed after the process groups: {strays}")
            if deployment.sigkilled:
                print(f"SIGKILLed after the grace period: {deployment.sigkilled}")
        if emulator is not None:
            emulator.close()
        if postgres is not None:
            postgres.stop()
        signal.signal(signal.SIGTERM, previous)
        if args.keep:
            print(f"Airflow home kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
        log(f"stopped; {time.monotonic() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
