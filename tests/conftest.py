"""Test-wide setup: an isolated Airflow home, and fixtures for the metadata DB and the emulator.

The environment is set when this file is imported, before any test module imports Airflow:
importing Airflow reads (and writes) ``$AIRFLOW_HOME/airflow.cfg`` and fixes the database URL.

Set ``PH_BX_TEST_AIRFLOW_HOME`` to reuse one Airflow home (and its migrated database) across runs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_posthog_bx.testing import PostHogEmulator

REPO_ROOT = Path(__file__).resolve().parent.parent

_reused_home = os.environ.get("PH_BX_TEST_AIRFLOW_HOME")
if _reused_home:
    AIRFLOW_HOME = Path(_reused_home).resolve()
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
else:
    AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ph-bx-airflow-home-"))

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# Tests write the DAG under test into this folder (tests/dag_runner.py): Airflow 3.3's
# dag.test() only runs DAGs it can parse from the DAGs folder.
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(AIRFLOW_HOME / "dags")
os.environ["AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS"] = "False"
# A LocalExecutor would otherwise pre-fork 32 workers on a 2-core machine.
os.environ["AIRFLOW__CORE__PARALLELISM"] = "4"
# A connection set by the developer's shell must not leak into tests.
os.environ.pop("AIRFLOW_CONN_POSTHOG_DEFAULT", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests under tests/emulator/ ``emulator``: ``make test`` runs them on one line."""
    emulator_dir = REPO_ROOT / "tests" / "emulator"
    for item in items:
        if emulator_dir in item.path.parents:
            item.add_marker(pytest.mark.emulator)


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _reused_home:
        shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Create (or upgrade) the SQLite metadata database in the tests' Airflow home, once a session.

    In-process ``airflow.utils.db.initdb`` takes ~2 s on both lines; the ``airflow db migrate``
    CLI costs ~5-6 s because it starts a new interpreter and imports Airflow again.
    Returns the Airflow home.
    """
    from airflow.utils import db

    db.initdb()
    return AIRFLOW_HOME


@pytest.fixture
def emulator() -> Iterator[PostHogEmulator]:
    """A started PostHog emulator with short backfill and run timings (0.2 s each step)."""
    from airflow_provider_posthog_bx.testing import PostHogEmulator

    with PostHogEmulator(
        backfill_create_delay=0.2,
        backfill_starting_seconds=0.2,
        run_seconds=0.2,
    ) as emu:
        yield emu


@pytest.fixture
def posthog_conn(emulator: PostHogEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the ``posthog_default`` Airflow connection at the emulator; returns the conn id."""
    conn: dict[str, Any] = {
        "conn_type": "posthog",
        "host": emulator.url,
        "password": emulator.api_key,
        "extra": {"project_id": emulator.project_id},
    }
    monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", json.dumps(conn))
    return "posthog_default"


FAST = {"backfill_create_delay": 0.2, "backfill_starting_seconds": 0.2, "run_seconds": 0.2}


@pytest.fixture
def make_emulator(
    airflow_db: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., PostHogEmulator]]:
    """Start an emulator with the given options and point ``posthog_default`` at it."""
    started: list[PostHogEmulator] = []

    def make(**options: Any) -> PostHogEmulator:
        emu = _emulator_class()(**{**FAST, **options}).start()
        started.append(emu)
        conn = {
            "conn_type": "posthog",
            "host": emu.url,
            "password": emu.api_key,
            "extra": {"project_id": emu.project_id},
        }
        monkeypatch.setenv("AIRFLOW_CONN_POSTHOG_DEFAULT", json.dumps(conn))
        return emu

    yield make
    for emu in started:
        emu.stop()


def _emulator_class() -> type[PostHogEmulator]:
    from airflow_provider_posthog_bx.testing import PostHogEmulator

    return PostHogEmulator
