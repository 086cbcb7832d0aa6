"""A real Airflow 3 deployment for the end-to-end tests (``make e2e``).

One deployment per test session: ``airflow db migrate`` into a fresh SQLite database, then
``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``, each started here in
its own session (process group) with a known PID: LocalExecutor, ``core.parallelism=4``, the
venv's ``bin`` first on PATH, the API on 127.0.0.1 and a free port, a temporary AIRFLOW_HOME
(``$PH_BX_TEST_AIRFLOW_HOME/e2e-deployment``, kept with its logs, when set). The PostHog emulator
runs in the test process; the components reach it over loopback and tests inspect it directly.

- DAGs: ``example_dags/``, parsed once by the dag-processor at start-up. The tests add no DAG
  files while it runs, so neither ``airflow dags reserialize`` (~2 s a call) nor a short
  ``refresh_interval`` is needed: the DAGs are serialised before the components report healthy.
  A test's own DAGs go into a second bundle, refreshed every 2 s (``Deployment.add_dag_file``).
- DAGs are unpaused at creation and cron schedules are off (``use_job_schedule=False``): only
  the runs a test triggers exist, so the emulator's request counts belong to that test.
- REST API v2: the simple auth manager with one configured user, a password file written here,
  and a JWT from ``POST /auth/token`` (the path a real client takes).
- Triggerer: heartbeat 2 s, health threshold 10 s (default 5 s / 30 s), so a new triggerer
  adopts a SIGKILLed one's triggers ~10 s after its last heartbeat.
- Long backfills: 300 hourly runs at 1 s each of emulator time stay in flight until a test ends
  them with ``emulator.advance``; see ``Deployment.wait_defer_exit_handled`` for the Airflow
  3.3.2 race that makes "let it finish within seconds" flaky.

Stopping, pass or fail (also on SIGTERM to pytest): SIGTERM to every component's process group,
10 s grace, SIGKILL to the groups (LocalExecutor workers ignore SIGTERM); then every process
whose environment carries this deployment's AIRFLOW_HOME is killed and reported as an error,
so a run leaves no orphans.

Measured on the 2-core machine (2026-11-29, Airflow 3.3.2, other engineers' test runs sharing
the CPUs), six runs: ``airflow db migrate`` 5-9 s; components healthy 15-22 s after launch;
start-up 21-31 s in all; stop 4-10 s; ``make e2e`` 72-88 s wall. Per test (call): triggerer
SIGKILL 20-25 s, backfill example 8-12 s, maintenance 4-10 s, mark-failed 5-9 s, teardown
2-3 s, parse check <0.1 s. The summary line and ``--durations`` print them for every run.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_posthog_bx.assets import destination_uri
from airflow_provider_posthog_bx.testing import PostHogEmulator

from .deployment import COMPONENTS, Deployment, write_summary


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip these tests on Airflow 2 (a bare ``pytest`` in the Airflow 2 venv collects them)."""
    if int(version("apache-airflow").split(".")[0]) >= 3:
        return
    skip = pytest.mark.skip(reason="the end-to-end deployment needs Airflow 3 (make e2e)")
    here = Path(__file__).resolve().parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def e2e_emulator() -> Iterator[PostHogEmulator]:
    """The PostHog emulator every component talks to (one backfill run = 1 s of its clock)."""
    with PostHogEmulator(
        backfill_create_delay=0.5,
        backfill_starting_seconds=0.5,
        run_seconds=1.0,
        max_concurrent_backfills=10,
        rate_limit=None,  # the emulator throttles as Cloud does by default; not what e2e tests
    ) as emu:
        yield emu


# Start-up and stop timings of this session's deployment, for the terminal summary.
TIMINGS: dict[str, float] = {}
SIGKILLED: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write_summary(terminalreporter, "e2e Airflow deployment", TIMINGS, SIGKILLED)


WATCHED_EXPORT = "asset watcher export"


def watch_asset_export(deployment: Deployment) -> None:
    """The export example_posthog_asset_watcher watches (its DAG file reads it from the
    environment at parse time), with a run that is Completed before any watcher starts."""
    emu = deployment.emulator
    export = emu.create_batch_export(name=WATCHED_EXPORT, interval="hour")
    end = emu.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    emu.add_run(export["id"], end - timedelta(hours=1), end)
    deployment.env.update(
        POSTHOG_BATCH_EXPORT_ID=export["id"],
        POSTHOG_DESTINATION_URI=destination_uri(export) or "s3://unnamed/destination",
        POSTHOG_WATCH_POLL_INTERVAL="1",
    )


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def deployment(e2e_emulator: PostHogEmulator) -> Iterator[Deployment]:
    """A started, healthy Airflow 3 deployment with the example DAGs serialised."""
    base = os.environ.get("PH_BX_TEST_AIRFLOW_HOME")
    if base:
        home = Path(base) / "e2e-deployment"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
    else:
        home = Path(tempfile.mkdtemp(prefix="ph-bx-e2e-"))
    deployment = Deployment(home, e2e_emulator)
    watch_asset_export(deployment)
    # `kill <pytest>` must still stop the deployment: turn SIGTERM into KeyboardInterrupt,
    # on which pytest tears fixtures down.
    previous = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    try:
        started = time.monotonic()
        deployment.migrate()
        launched = time.monotonic()
        for component in COMPONENTS:
            deployment.start(component)
        deployment.wait_healthy()
        deployment.timings["components healthy"] = time.monotonic() - launched
        deployment.login()
        deployment.wait_example_dags(started)
        yield deployment
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut this short
        stopping = time.monotonic()
        strays = deployment.stop()
        deployment.timings["stop"] = time.monotonic() - stopping
        TIMINGS.update(deployment.timings)
        SIGKILLED.extend(deployment.sigkilled)
        signal.signal(signal.SIGTERM, previous)
        if not base:
            shutil.rmtree(home, ignore_errors=True)
        assert not strays, "processes outlived their process groups and were killed:\n" + (
            "\n".join(strays)
        )


@pytest.fixture
def batch_export(deployment: Deployment) -> dict[str, Any]:
    """A fresh hourly batch export, set as the ``posthog_batch_export_id`` Variable."""
    export = deployment.emulator.create_batch_export(name=f"e2e {uuid.uuid4().hex[:8]}")
    deployment.set_variable("posthog_batch_export_id", export["id"])
    return export
