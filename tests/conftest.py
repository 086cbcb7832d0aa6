"""Test-wide setup: an isolated Airflow home, and fixtures for the metadata DB and the emulator.

The environment is set when this file is imported, before any test module imports Airflow:
importing Airflow reads (and writes) ``$AIRFLOW_HOME/airflow.cfg`` and fixes the database URL.

Set ``PH_BX_TEST_AIRFLOW_HOME`` to reuse one Airflow home (and its migrated database) across runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_posthog_bx.testing.pytest_plugin import CONN_ENV, connection_env

if TYPE_CHECKING:
    from airflow_provider_posthog_bx.testing import PostHogEmulator
    from airflow_provider_posthog_bx.testing.pytest_plugin import EmulatorFactory

# The emulator fixtures users get too: posthog_emulator (a factory), posthog_emulator_default
# and posthog_connection (posthog_default pointed at it).
pytest_plugins = ["airflow_provider_posthog_bx.testing.pytest_plugin"]

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
def make_emulator(
    airflow_db: Any, posthog_emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., PostHogEmulator]:
    """Start an emulator with the given options (fast timings by default) and point
    ``posthog_default`` at it; for the DAG tests, which also need the metadata database."""

    def make(**options: Any) -> PostHogEmulator:
        emu = posthog_emulator(**options)
        monkeypatch.setenv(CONN_ENV, connection_env(emu))
        return emu

    return make
