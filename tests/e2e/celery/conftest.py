"""A production-shaped Airflow 3 deployment for the end-to-end tests in this package.

The same components as ``tests/e2e/conftest.py``'s deployment (``CeleryDeployment`` subclasses
``Deployment``), on real servers: a PostgreSQL 15 metadata database (also Celery's result
backend) and a Redis broker, both started here on 127.0.0.1 and free ports with their own data
directories, as the unprivileged ``postgres`` and ``redis`` users when run as root
(``services.py``; ``scripts/install-services.sh`` installs them). Then the two
``airflow celery worker`` processes (concurrency 2, hostnames ``celery-worker-N@<host>``, each
serving logs on its own port) start while ``airflow db migrate`` runs (a Celery worker needs no
Airflow tables), then the api-server, scheduler, dag-processor and triggerer. Every process
has a known PID and its own session and process group; the home is
``$PH_BX_TEST_AIRFLOW_HOME/e2e-celery-deployment`` (kept with its logs) when set.

``deployment`` and ``e2e_emulator`` here override the fixtures of the same names in
``tests/e2e/conftest.py`` for this package, so the shared fixtures (``batch_export``) and the
tests reused from ``tests/e2e`` run against this deployment and its own emulator. Both are
package-scoped: they stop after the last test of this package, before the SQLite deployment
of the other e2e tests starts (pytest runs this directory first), so the two deployments
never run at once.

Stopping, pass or fail (also on SIGTERM to pytest): the Airflow components as in
``Deployment.stop`` (SIGTERM to each process group, 10 s grace, SIGKILL, then the stray sweep),
then Redis (SIGTERM) and PostgreSQL (SIGINT, "fast" shutdown) by PID, each SIGKILLed with its
process group after 10 s.

The scheduler fails a running task instance whose heartbeat is 10 s old
(``[scheduler] task_instance_heartbeat_timeout``, default 300 s), looking every 2 s; live tasks
beat every 2 s. That is how Airflow notices a task whose Celery worker died: measured 10-12 s
from the SIGKILL to the failed try, 13-15 s to the retry polling PostHog.

Measured on the 2-core machine (2026-12-02, other engineers' tests sharing the CPUs): servers
ready 1-3 s, ``airflow db migrate`` 17-23 s, everything healthy 45-63 s after start, stop 6-10 s;
``pytest tests/e2e/celery`` 127-159 s wall. Per test (call): scheduled examples 18-30 s, worker
SIGKILL 20-29 s, triggerer SIGKILL 17-20 s, mark failed 4-7 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_posthog_bx.testing import PostHogEmulator

from ..deployment import write_summary
from .deployment import CeleryDeployment
from .services import start_services

# Start-up and stop timings, and figures the tests measure, for the terminal summary.
TIMINGS: dict[str, float] = {}
SIGKILLED: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write_summary(terminalreporter, "e2e Celery deployment", TIMINGS, SIGKILLED)


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="package")
def e2e_emulator() -> Iterator[PostHogEmulator]:
    """This deployment's own PostHog emulator, as configured as ``tests/e2e``'s: the tests
    here move its clock and add exports, which the SQLite deployment's tests must not see."""
    with PostHogEmulator(
        backfill_create_delay=0.5,
        backfill_starting_seconds=0.5,
        run_seconds=1.0,
        max_concurrent_backfills=10,
        rate_limit=None,
    ) as emu:
        yield emu


@pytest.fixture(scope="package")
def deployment(e2e_emulator: PostHogEmulator) -> Iterator[CeleryDeployment]:
    """A started Celery deployment: servers ready, components healthy, workers consuming,
    the example DAGs serialised."""
    base = os.environ.get("PH_BX_TEST_AIRFLOW_HOME")
    if base:
        home = Path(base) / "e2e-celery-deployment"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
    else:
        home = Path(tempfile.mkdtemp(prefix="ph-bx-e2e-celery-"))
    home.chmod(0o755)  # the servers' unprivileged users reach their data directories in it
    # `kill <pytest>` must still stop everything: SIGTERM becomes KeyboardInterrupt, on which
    # pytest tears fixtures down.
    previous = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    deployment: CeleryDeployment | None = None
    started = time.monotonic()
    try:
        postgres, redis, timings = start_services(home)  # stops them itself if it fails
        try:
            deployment = CeleryDeployment(home, e2e_emulator, postgres, redis)
        except BaseException:
            for server in (redis, postgres):
                server.stop()
            raise
        ready = deployment  # not None from here on
        ready.timings.update(timings)
        launched = time.monotonic()
        ready.migrate_and_start()
        ready.timings["migrated, components healthy"] = time.monotonic() - launched
        ready.login()
        ready.wait_example_dags(started)
        yield ready
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut this short
        strays: list[str] = []
        if deployment is not None:
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
