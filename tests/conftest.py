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


def _plain_task_errors_on_airflow_3_0() -> None:
    """Print a task's exception as a plain traceback under Airflow 3.0's ``dag.test()``.

    Airflow 3.0 runs ``dag.test()`` tasks in process without configuring structlog, so the task
    runner's "Task failed with exception" goes through structlog's default renderer: a Rich
    traceback, coloured and wrapped at 100 columns, which splits the exception line (e.g.
    ``BatchExportJobFailed: ... PostHog's message``) over several lines. Airflow 3.1+ print it
    on one line; this gives 3.0 the same rendering, so a test can tell a task that failed with
    PostHog's message from one that timed out. Nothing else about the run changes.
    """
    from importlib.metadata import version

    if not version("apache-airflow").startswith("3.0."):
        return
    import structlog

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=True),
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    )


_plain_task_errors_on_airflow_3_0()


# The compatibility set, marked ``compat`` here: what ``make test-compat`` runs on every other
# Airflow line (3.0, 3.1, 3.2, 2.11, each with its dependencies as of its release). The hooks,
# every operator and both sensors through dag.test() (deferrable included), trigger
# serialisation; 20 s (Airflow 2) to 70-110 s (Airflow 3, on a busy 2-core machine) per line.
# A file stands for all of its tests, a test for all of its parameters; an entry that matches
# nothing in a collected file is an error.
COMPAT_SET = (
    "tests/hooks/test_hook_methods.py",
    "tests/hooks/test_async_hook.py",
    "tests/operators/test_backfill_operator.py::test_backfill_succeeds_through_the_404_window[deferrable]",
    "tests/operators/test_backfill_operator.py::test_cancelled_backfill_fails_with_status_and_error_logs",
    "tests/operators/test_pause_unpause_delete.py::test_pause_and_unpause_are_idempotent",
    "tests/operators/test_pause_unpause_delete.py::test_delete_whose_first_answer_was_lost_succeeds",
    "tests/sensors/test_sensor_failures.py",
    "tests/triggers/test_triggers.py::test_triggers_built_by_the_sensors_round_trip_through_plain_json",
    "tests/triggers/test_triggers.py::test_redeferral_keeps_the_first_deadline_and_soft_fail",
    "tests/triggers/test_triggers.py::test_logs_sensor_rejects_missing_or_unknown_events",
    "tests/triggers/test_triggers.py::test_run_sensor_rejects_missing_or_unknown_events",
)


COMPAT_FILES = {entry.split("::")[0] for entry in COMPAT_SET}


def _in_compat_set(nodeid: str, entry: str) -> bool:
    return nodeid == entry or nodeid.startswith((entry + "::", entry + "["))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A run whose ``-m`` starts with ``compat`` (``make test-compat``) imports only the files
    of :data:`COMPAT_SET`: collecting the whole suite would cost each line seconds."""
    markexpr = config.getoption("markexpr", "") or ""
    if markexpr.split()[:1] != ["compat"] or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    try:
        relative = collection_path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return None
    return relative not in COMPAT_FILES


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests under tests/emulator/ ``emulator`` (``make test`` runs them on one line)
    and the tests of :data:`COMPAT_SET` ``compat``."""
    emulator_dir = REPO_ROOT / "tests" / "emulator"
    matched: set[str] = set()
    collected_files = set()
    for item in items:
        if emulator_dir in item.path.parents:
            item.add_marker(pytest.mark.emulator)
        collected_files.add(item.nodeid.split("::")[0])
        for entry in COMPAT_SET:
            if _in_compat_set(item.nodeid, entry):
                item.add_marker(pytest.mark.compat)
                matched.add(entry)
    stale = [e for e in COMPAT_SET if e not in matched and e.split("::")[0] in collected_files]
    if stale:
        raise pytest.UsageError(f"COMPAT_SET entries that match no test: {stale}")


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
