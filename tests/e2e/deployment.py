"""The Airflow deployment driven by the end-to-end tests: processes, REST API, waits."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx

from airflow_provider_posthog_bx.testing import PostHogEmulator
from airflow_provider_posthog_bx.testing.pytest_plugin import connection_env

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"
BIN = Path(sys.executable).parent
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
EXAMPLE_DAG_IDS = (
    "example_posthog_backfill",
    "example_posthog_maintenance",
    "example_posthog_teardown",
)
# Generous bounds for a loaded 2-core machine; healthy runs take a fraction of them.
START_TIMEOUT = 150.0
RUN_TIMEOUT = 120.0
STOP_GRACE = 10.0
# Triggers of a dead triggerer are taken over once its heartbeat is this old (default 30 s).
TRIGGERER_HEALTH_CHECK_THRESHOLD = 10
_ADMIN_USER = "admin"
# A second DAG bundle, empty at start, for DAG files a test writes while the deployment runs
# (``Deployment.add_dag_file``): refreshed every few seconds, unlike the example DAGs' bundle
# (``dags-folder``, unchanged: parsed once at start-up).
TEST_DAGS_BUNDLE = "e2e-test-dags"
TEST_DAGS_REFRESH_INTERVAL = 2

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    what: str,
    timeout: float,
    interval: float = 0.5,
    details: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None; fail after ``timeout`` s.

    ``probe`` may raise AssertionError to fail at once (e.g. an unexpected final state).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            extra = f"\n{details()}" if details else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {path.name})"
    return "\n".join(text[-lines:])


class Deployment:
    """The running components, their REST API, and helpers to drive DAG runs through them."""

    def __init__(self, home: Path, emulator: PostHogEmulator) -> None:
        self.home = home
        self.emulator = emulator
        self.port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        password = secrets.token_urlsafe(16)
        (home / "passwords.json").write_text(json.dumps({_ADMIN_USER: password}))
        self._password = password
        # Start from a clean slate: nothing from the test session's own Airflow set-up.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(EXAMPLE_DAGS),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
            AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS="False",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=self.api_url,
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.api_url}/execution/",
            # The scheduler's and triggerer's log servers: free ports, not the fixed 8793/8794
            # another Airflow on this machine may hold. (Airflow binds them to all interfaces.)
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(_free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(_free_port()),
            # One secret for every component: the api-server validates the tokens the
            # scheduler issues to task processes.
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(64),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{_ADMIN_USER}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
            AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="2",
            AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD=str(
                TRIGGERER_HEALTH_CHECK_THRESHOLD
            ),
            AIRFLOW_CONN_POSTHOG_DEFAULT=connection_env(emulator),
        )
        self.test_dags = home / "test_dags"
        self.test_dags.mkdir(exist_ok=True)
        env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
            [
                {  # Airflow's default bundle: the dags folder, example_dags/
                    "name": "dags-folder",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {},
                },
                {
                    "name": TEST_DAGS_BUNDLE,
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {
                        "path": str(self.test_dags),
                        "refresh_interval": TEST_DAGS_REFRESH_INTERVAL,
                    },
                },
            ]
        )
        self.env = env
        # Every process ever started, by component; the last one is the current one.
        self.processes: dict[str, list[subprocess.Popen[bytes]]] = {}
        self.client = httpx.Client(base_url=self.api_url, timeout=30)
        self.timings: dict[str, float] = {}
        # Process groups still alive after the SIGTERM grace period of stop().
        self.sigkilled: list[str] = []

    # -- lifecycle ----------------------------------------------------------------------------

    def migrate(self) -> None:
        started = time.monotonic()
        result = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        assert result.returncode == 0, f"airflow db migrate failed:\n{result.stderr[-3000:]}"
        self.timings["db migrate"] = time.monotonic() - started

    def start(self, component: str) -> subprocess.Popen[bytes]:
        """Start one component in its own session, logging to ``<home>/<component>.N.log``."""
        runs = self.processes.setdefault(component, [])
        log_path = self.home / f"{component}.{len(runs) + 1}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [str(BIN / "airflow"), *self.command(component)],
                env=self.component_env(component),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        runs.append(process)
        return process

    def command(self, component: str) -> list[str]:
        """The ``airflow`` arguments that run ``component`` (a subclass may add components)."""
        return [component]

    def component_env(self, component: str) -> dict[str, str]:
        """The environment of ``component``'s process: the deployment's, unless overridden."""
        return self.env

    def current(self, component: str) -> subprocess.Popen[bytes]:
        return self.processes[component][-1]

    def kill(self, component: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` to the component's whole process group and wait for its leader."""
        process = self.current(component)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=STOP_GRACE)
        if sig == signal.SIGKILL:
            wait_for(
                lambda: True if not _group_members(process.pid) else None,
                f"every process of the killed {component} to exit",
                STOP_GRACE,
                interval=0.1,
            )

    def stop(self) -> list[str]:
        """Stop every process started here; return descriptions of orphans that had to be
        killed afterwards (empty when the process groups held everything)."""
        self.client.close()
        started = [(c, p) for c, runs in self.processes.items() for p in runs]
        for _, process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for _, process in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        # LocalExecutor workers ignore SIGTERM, and a leader may have left children behind.
        self.sigkilled = [
            f"{c} ({len(members)} left)" for c, p in started if (members := _group_members(p.pid))
        ]
        for _, process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        for _, process in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_GRACE)
        return _kill_strays(str(self.home))

    def check_alive(self) -> None:
        for component, runs in self.processes.items():
            code = runs[-1].poll()
            if code is not None:
                raise AssertionError(
                    f"airflow {component} exited with code {code}:\n"
                    f"{_tail(self.home / f'{component}.{len(runs)}.log')}"
                )

    def wait_healthy(self, components: tuple[str, ...] = COMPONENTS) -> dict[str, Any]:
        keys = {c.replace("-", "_") for c in components if c != "api-server"}

        def probe() -> dict[str, Any] | None:
            self.check_alive()
            try:
                response = self.client.get("/api/v2/monitor/health")
            except httpx.TransportError:
                return None
            if response.status_code != 200:
                return None
            health: dict[str, Any] = response.json()
            ok = all(health.get(k, {}).get("status") == "healthy" for k in keys)
            return health if ok else None

        return wait_for(
            probe, f"{', '.join(components)} to be healthy", START_TIMEOUT, details=self.diagnostics
        )

    def login(self) -> None:
        response = self.client.post(
            "/auth/token", json={"username": _ADMIN_USER, "password": self._password}
        )
        assert response.status_code == 201, response.text
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def wait_example_dags(self, started: float) -> None:
        """Wait until the dag-processor has serialised the example DAGs; record the start-up
        time since ``started`` (``time.monotonic()``)."""

        def dags_ready() -> bool | None:
            self.check_alive()
            dags = self.api("GET", "/dags", params={"limit": 100})["dags"]
            return True if set(EXAMPLE_DAG_IDS) <= {d["dag_id"] for d in dags} else None

        wait_for(
            dags_ready, "the example DAGs to be serialised", START_TIMEOUT, details=self.diagnostics
        )
        self.timings["start-up total"] = time.monotonic() - started

    def diagnostics(self) -> str:
        parts = []
        for component, runs in self.processes.items():
            log = self.home / f"{component}.{len(runs)}.log"
            parts.append(f"--- {log} (last lines)\n{_tail(log, 25)}")
        return "\n".join(parts)

    # -- REST API -----------------------------------------------------------------------------

    def api(self, method: str, path: str, expect: int | tuple[int, ...] = 200, **kw: Any) -> Any:
        response = self.client.request(method, f"/api/v2{path}", **kw)
        codes = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in codes, (
            f"{method} {path} -> {response.status_code}: {response.text[:2000]}"
        )
        return response.json() if response.content else None

    def set_variable(self, key: str, value: str) -> None:
        response = self.client.patch(f"/api/v2/variables/{key}", json={"key": key, "value": value})
        if response.status_code == 404:
            self.api("POST", "/variables", expect=201, json={"key": key, "value": value})
        else:
            assert response.status_code == 200, response.text

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self.api(
            "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        return str(run["dag_run_id"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        body = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]}

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        ti: dict[str, Any] = self.api(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        )
        return ti

    def wait_run(self, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> str:
        """Wait until the DAG run is final; return its state ("success" or "failed")."""
        seen: dict[str, Any] = {}

        def probe() -> str | None:
            self.check_alive()
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            seen.update(run=state, tasks=self.task_states(dag_id, run_id))
            return str(state) if state in ("success", "failed") else None

        return wait_for(
            probe,
            f"DAG run {dag_id} {run_id} to finish",
            timeout,
            details=lambda: f"last seen: {seen}\n{self.run_logs(dag_id, run_id)}",
        )

    def wait_task_state(
        self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = RUN_TIMEOUT
    ) -> dict[str, Any]:
        """Wait until a task instance is in ``state``; fail at once if it ends otherwise."""
        seen: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            self.check_alive()
            ti = self.task_instance(dag_id, run_id, task_id)
            seen["state"] = ti["state"]
            if ti["state"] == state:
                return ti
            if ti["state"] in ("success", "failed", "up_for_retry", "upstream_failed", "skipped"):
                raise AssertionError(
                    f"{dag_id}.{task_id} ended {ti['state']} while waiting for {state}\n"
                    f"{self.run_logs(dag_id, run_id)}"
                )
            return None

        return wait_for(
            probe,
            f"{dag_id}.{task_id} in {run_id} to be {state}",
            timeout,
            details=lambda: f"last seen: {seen}\n{self.run_logs(dag_id, run_id)}",
        )

    def wait_defer_exit_handled(self, ti_id: str, timeout: float = RUN_TIMEOUT) -> None:
        """Wait until the scheduler has handled the executor's "finished" event of the worker
        that deferred task instance ``ti_id``.

        A trigger event that resumes the task before then races that stale event, and Airflow
        3.3.2 may fail the resumed task ("state mismatch", then up_for_retry): apache/airflow
        issues 66374, 67287, 71580, 72716. The worker's supervisor takes up to ~5 s to notice
        its task process exited, so a remote job that ends within seconds of the deferral hits
        it. The scheduler logs ``TaskInstance Finished: ..., ti_id=<id>, ..., state=deferred,``
        when it has handled the event; no REST field shows it.
        """
        log = self.home / f"scheduler.{len(self.processes['scheduler'])}.log"
        needles = ("TaskInstance Finished:", f"ti_id={ti_id},", ", state=deferred,")

        def probe() -> bool | None:
            self.check_alive()
            text = log.read_text(errors="replace")
            lines = (line for line in text.splitlines() if needles[0] in line)
            return True if any(all(n in line for n in needles) for line in lines) else None

        wait_for(
            probe,
            f"the scheduler to handle the deferring worker's exit for {ti_id}",
            timeout,
            details=lambda: f"--- {log}\n{_tail(log, 40)}",
        )

    def add_dag_file(
        self, name: str, source: str, dag_ids: tuple[str, ...], timeout: float = START_TIMEOUT
    ) -> None:
        """Write a DAG file into the test DAG bundle; return once the dag-processor has
        serialised every one of ``dag_ids`` (unpaused, as every DAG here)."""
        path = self.test_dags / name
        staging = path.with_suffix(".tmp")  # not a .py file: never parsed half-written
        staging.write_text(source)
        staging.replace(path)

        def probe() -> bool | None:
            self.check_alive()
            errors = self.api("GET", "/importErrors")["import_errors"]
            mine = [e for e in errors if e.get("filename", "").endswith(name)]
            assert not mine, f"{name} does not import:\n{mine[0].get('stack_trace')}"
            codes = [self.client.get(f"/api/v2/dags/{d}").status_code for d in dag_ids]
            return True if all(code == 200 for code in codes) else None

        wait_for(probe, f"the DAGs of {name} to be serialised", timeout, details=self.diagnostics)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
        )
        return entry["value"]

    def run_logs(self, dag_id: str, run_id: str) -> str:
        """The task and trigger log files of a run (for failure messages)."""
        logs = sorted((self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}").rglob("*"))
        parts = [f"--- {p}\n{_tail(p, 30)}" for p in logs if p.is_file()]
        return "\n".join(parts) or f"(no task logs for {run_id})\n{self.diagnostics()}"


def write_summary(
    terminalreporter: Any, label: str, timings: dict[str, float], sigkilled: list[str]
) -> None:
    """A deployment's start-up and stop timings, and what needed SIGKILL, for pytest's
    terminal summary."""
    if timings:
        terminalreporter.write_line(
            f"{label}: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        )
    if sigkilled:
        terminalreporter.write_line(
            f"{label}, SIGKILLed after the SIGTERM grace: " + ", ".join(sigkilled)
        )


def _members(field: str, value: int) -> list[int]:
    """The live processes (zombies excluded) whose process ``"group"`` or ``"session"`` is
    ``value``, from ``/proc/*/stat``."""
    index = {"group": 2, "session": 3}[field]  # after the command: state, ppid, pgrp, session
    members = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[index]) == value and fields[0] != "Z":
            members.append(int(proc.name))
    return members


def _group_members(pgid: int) -> list[int]:
    return _members("group", pgid)


def _kill_strays(airflow_home: str) -> list[str]:
    """SIGKILL every live process whose environment carries this AIRFLOW_HOME; describe them."""
    marker = f"AIRFLOW_HOME={airflow_home}".encode()
    strays = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        strays.append(f"{proc.name}: {cmdline.strip()}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(proc.name), signal.SIGKILL)
    return strays


def past_hours(hours: int, ago: int = 1) -> tuple[str, str]:
    """ISO bounds of ``hours`` whole hours ending ``ago`` hours before the current hour (UTC).

    Wall-clock based: the emulator's clock only ever runs ahead of it (``advance``).
    """
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    end -= timedelta(hours=ago)
    return (end - timedelta(hours=hours)).isoformat(), end.isoformat()


def creates(batch_export_id: str) -> str:
    """Path regex of backfill creates for one export (current and legacy PostHog routes)."""
    return rf"/batch_exports/{batch_export_id}/backfills?/?$"


def trigger_logs(deployment: Deployment, dag_id: str, run_id: str, task_id: str) -> list[Path]:
    """The trigger log files of a task, one per triggerer job that ran its trigger
    (``attempt=N.log.trigger.<job id>.log``)."""
    task_dir = deployment.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    return sorted((task_dir / f"task_id={task_id}").glob("attempt=*.log.trigger.*.log"))


@dataclass(frozen=True)
class DeferredBackfill:
    run_id: str
    backfill_id: str
    start_at: str
    end_at: str
    polls: str
    """Path regex matching the trigger's status checks of this backfill."""


def start_deferred_backfill(
    deployment: Deployment, dag_id: str, task_id: str, batch_export_id: str, hours: int
) -> DeferredBackfill:
    """Trigger ``dag_id`` over ``hours`` past hours; return once its backfill is in flight, the
    task deferred, the trigger polling PostHog from the triggerer and logging to its file, and
    the scheduler settled.

    The emulator runs one hourly backfill run per second of its clock, so with enough hours
    the backfill stays in flight until the test ends it (``emulator.advance``) or cancels it.
    """
    emu = deployment.emulator
    start_at, end_at = past_hours(hours)
    run_id = deployment.trigger(dag_id, {"start_at": start_at, "end_at": end_at})
    ti = deployment.wait_task_state(dag_id, run_id, task_id, "deferred")
    backfill_id = deployment.xcom(dag_id, run_id, task_id, "backfill_id")
    polls = rf"/batch_exports/{batch_export_id}/backfills/{backfill_id}/?$"
    # The task checked once itself before deferring; the next GET is the trigger's.
    seen = emu.count("GET", polls)
    wait_for(
        lambda: True if emu.count("GET", polls) > seen else None,
        "the trigger to poll the backfill",
        60,
        details=lambda: deployment.run_logs(dag_id, run_id),
    )
    # The triggerer writes the trigger's log lines to its file a moment after the poll: a test
    # that kills the triggerer counts on that file being there.
    wait_for(
        lambda: (
            True
            if any(log.stat().st_size for log in trigger_logs(deployment, dag_id, run_id, task_id))
            else None
        ),
        "the trigger's log file",
        60,
        details=lambda: deployment.run_logs(dag_id, run_id),
    )
    deployment.wait_defer_exit_handled(ti["id"])
    status = emu.get_backfill(backfill_id)["status"]
    assert status in ("Starting", "Running"), f"backfill {backfill_id} is {status} already"
    return DeferredBackfill(run_id, backfill_id, start_at, end_at, polls)
