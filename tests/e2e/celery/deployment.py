"""The production-shaped deployment: the e2e ``Deployment`` on PostgreSQL with the
CeleryExecutor, a Redis broker and two Celery workers."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from airflow_provider_posthog_bx.testing import PostHogEmulator

from ..deployment import (
    COMPONENTS,
    START_TIMEOUT,
    STOP_GRACE,
    Deployment,
    _free_port,
    _members,
    _tail,
    wait_for,
)
from .services import Postgres, Redis

WORKERS = ("celery-worker-1", "celery-worker-2")
WORKER_CONCURRENCY = 2
# The scheduler fails a running task instance whose heartbeat is this old (default 300 s): a
# task whose Celery worker was SIGKILLed is failed (and retried) this long after its last beat.
TASK_INSTANCE_HEARTBEAT_TIMEOUT = 10
# How often the scheduler looks for them (default 10 s), and how often a live task's supervisor
# beats at most (default 5 s; it beats at least every 0.75 x the timeout).
HEARTBEAT_TIMEOUT_DETECTION_INTERVAL = 2
MIN_HEARTBEAT_INTERVAL = 2


class CeleryDeployment(Deployment):
    """The same components on PostgreSQL, with the CeleryExecutor, a Redis broker and the
    Celery workers of ``WORKERS`` (each ``airflow celery worker`` its own process group, with
    its own Celery hostname and log server port)."""

    def __init__(
        self, home: Path, emulator: PostHogEmulator, postgres: Postgres, redis: Redis
    ) -> None:
        super().__init__(home, emulator)
        self.postgres = postgres
        self.redis = redis
        self.env.update(
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgres.url,
            AIRFLOW__CELERY__BROKER_URL=redis.url(),
            AIRFLOW__CELERY__RESULT_BACKEND=f"db+{postgres.url}",
            AIRFLOW__CELERY__WORKER_CONCURRENCY=str(WORKER_CONCURRENCY),
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=str(
                TASK_INSTANCE_HEARTBEAT_TIMEOUT
            ),
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL=str(
                HEARTBEAT_TIMEOUT_DETECTION_INTERVAL
            ),
            AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=str(MIN_HEARTBEAT_INTERVAL),
            # The example DAG files never change while the tests run: parse them once, not
            # every 30 s (CPU the tests need). New files in the test bundle are parsed at once.
            AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="3600",
        )
        # Each worker serves its task logs on a port of its own.
        self.worker_log_ports = {worker: _free_port() for worker in WORKERS}

    def command(self, component: str) -> list[str]:
        if component not in WORKERS:
            return super().command(component)
        return [
            "celery",
            "worker",
            "--celery-hostname",
            f"{component}@%h",
            "--concurrency",
            str(WORKER_CONCURRENCY),
        ]

    def component_env(self, component: str) -> dict[str, str]:
        if component not in WORKERS:
            return super().component_env(component)
        port = str(self.worker_log_ports[component])
        return {**self.env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": port}

    def migrate_and_start(self) -> None:
        """Migrate the database and start every component; wait until all of them are ready.

        The workers start first, while ``airflow db migrate`` runs: on Airflow 3 a Celery
        worker needs no metadata tables (only Redis and Celery's own result tables).
        """
        for worker in WORKERS:
            self.start(worker)
        self.migrate()
        for component in COMPONENTS:
            self.start(component)
        self.wait_healthy()
        for worker in WORKERS:
            self.wait_worker_ready(worker)

    def wait_worker_ready(self, worker: str) -> None:
        """Wait until the current process of ``worker`` consumes from the broker (Celery logs
        ``<hostname> ready.``)."""
        log = self.home / f"{worker}.{len(self.processes[worker])}.log"
        needle = f"{worker}@"

        def probe() -> bool | None:
            self.check_alive()
            text = log.read_text(errors="replace") if log.exists() else ""
            lines = text.splitlines()
            return True if any(needle in ln and " ready." in ln for ln in lines) else None

        wait_for(probe, f"{worker} to be ready", START_TIMEOUT, details=lambda: _tail(log))

    def worker_running(self, ti_id: str) -> str:
        """The worker that runs task instance ``ti_id``: its task process (titled
        ``airflow worker -- <ti id>``) is in the worker's session. (The supervisor puts the
        task process in a process group of its own, so not in the worker's group.)"""
        title = f"airflow worker -- {ti_id}".encode()

        def probe() -> str | None:
            for worker in WORKERS:
                for pid in _session_members(self.current(worker).pid):
                    try:
                        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    except OSError:
                        continue
                    if cmdline.startswith(title):
                        return worker
            return None

        return wait_for(probe, f"the task process of {ti_id} in a Celery worker", 30)

    def kill_worker(self, worker: str) -> None:
        """SIGKILL every process of ``worker``'s session at once, as when its machine dies:
        the Celery worker, its pool, each task's supervisor and task process."""
        process = self.current(worker)

        def probe() -> bool | None:
            members = _session_members(process.pid)
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return None if members else True

        wait_for(probe, f"every process of {worker} to exit", STOP_GRACE, interval=0.05)
        process.wait(timeout=STOP_GRACE)

    def celery_tasks(self, dag_id: str, run_id: str) -> dict[str, tuple[str | None, str | None]]:
        """Per task of a DAG run: the Celery task id its (last) execution had, and the worker
        whose log shows Celery received it (None for either if it did not run on Celery)."""
        rows = self.postgres.query(
            "SELECT task_id, external_executor_id FROM task_instance"
            " WHERE dag_id = %s AND run_id = %s",
            dag_id,
            run_id,
        )
        logs = {
            worker: "\n".join(
                (self.home / f"{worker}.{n}.log").read_text(errors="replace")
                for n in range(1, len(self.processes[worker]) + 1)
            )
            for worker in WORKERS
        }

        def receiver(celery_id: str | None) -> str | None:
            needle = f"Task execute_workload[{celery_id}] received"
            return next((w for w, text in logs.items() if celery_id and needle in text), None)

        return {task: (celery_id, receiver(celery_id)) for task, celery_id in rows}

    def assert_ran_on_celery(self, dag_id: str, run_id: str) -> set[str]:
        """Assert every task of a DAG run was executed by one of the Celery workers (its
        Celery task received in a worker's log); return those workers."""
        tasks = self.celery_tasks(dag_id, run_id)
        assert tasks, f"no task instances in {dag_id} {run_id}"
        not_on_celery = {t: v for t, v in tasks.items() if v[1] is None}
        assert not not_on_celery, (
            f"tasks of {dag_id} {run_id} not received by a Celery worker "
            f"(task: (celery id, worker)): {not_on_celery}"
        )
        return {worker for _, worker in tasks.values() if worker}

    def run_ids(self, dag_id: str) -> set[str]:
        runs = self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
        return {str(run["dag_run_id"]) for run in runs}

    def stop(self) -> list[str]:
        """Stop the Airflow components, then the servers under them; a server still running
        after its grace period is SIGKILLed and reported with the Airflow orphans."""
        started = time.monotonic()
        try:
            strays = super().stop()
        finally:
            self.timings["stop airflow"] = time.monotonic() - started
            servers = time.monotonic()
            for server in (self.redis, self.postgres):
                self.sigkilled.extend(server.stop())
            self.timings["stop servers"] = time.monotonic() - servers
        return strays


def _session_members(sid: int) -> list[int]:
    """The live processes of session ``sid`` (zombies excluded)."""
    return _members("session", sid)
