"""Helpers for the sensor tests: act on the emulator once a sensor has polled, read echoes."""

from __future__ import annotations

import importlib.util
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from dag_runner import DagRunResult, dags_folder
from support import answered

if TYPE_CHECKING:
    from airflow_provider_posthog_bx.testing import PostHogEmulator


class Background:
    """Actions run from threads once the emulator has seen enough requests."""

    def __init__(self, emu: PostHogEmulator) -> None:
        self.emu = emu
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.stop = threading.Event()

    def after_requests(
        self, path_regex: str, count: int, action: Callable[[], Any], method: str = "GET"
    ) -> None:
        """Run ``action`` once ``count`` requests matching ``path_regex`` have arrived."""

        def wait_then_act() -> None:
            try:
                while answered(self.emu, method, path_regex) < count:
                    if self.stop.wait(0.02):
                        return
                action()
            except BaseException as error:  # surfaced by check()
                self.errors.append(error)

        thread = threading.Thread(target=wait_then_act, daemon=True)
        thread.start()
        self.threads.append(thread)

    def check(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)
        if self.errors:
            raise self.errors[0]


# Airflow 3.0's dag.test() task-log copy: "[2026-12-02 04:28:25,511] {run.py:83} INFO - ..."
_DAG_TEST_COPY = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] \{")


@pytest.fixture
def task_output(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Callable[[], str]:
    """What the tasks of this test logged (call it after the DAG ran).

    Airflow 3 task logs go to stdout (structlog); Airflow 2 ``dag.test()`` binds its console
    handler to the first test's stdout, so there the log records are read from ``caplog``.
    Airflow 3.0's ``dag.test()`` adds a second stdout handler to the task logger
    (``add_logger_if_needed``, gone in 3.1): its copy of each line is dropped, so a line
    logged once is read once on every line.
    """
    from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

    caplog.set_level("INFO")

    def read() -> str:
        out = capfd.readouterr().out
        if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
            out = "".join(
                line for line in out.splitlines(keepends=True) if not _DAG_TEST_COPY.match(line)
            )
        return out if AIRFLOW_V_3_0_PLUS else caplog.text

    return read


@pytest.fixture
def background(posthog_emulator_default: PostHogEmulator) -> Iterator[Background]:
    helper = Background(posthog_emulator_default)
    yield helper
    helper.stop.set()


def echo_count(output: str, level: str, message: str) -> int:
    """How many task-log lines echo this PostHog entry (``PostHog <ts> LEVEL: message``).

    Task logs reach stdout once per line on both Airflow lines under ``dag.test()``.
    """
    pattern = re.compile(rf"PostHog \S+ {re.escape(level)}: {re.escape(message)}$")
    return sum(1 for line in output.splitlines() if pattern.search(_strip_logger(line)))


def _strip_logger(line: str) -> str:
    # Airflow 3 (structlog) appends " [logger] loc=file.py:N" to each line.
    return re.sub(r"\s+\[[\w.]+\]\s+loc=\S+$", "", line.rstrip())


def run_dag_file(source: Path, **test_kwargs: Any) -> DagRunResult:
    """Copy a DAG file (an example DAG) into the DAGs folder, import it and ``dag.test()`` it."""
    folder = dags_folder()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.py"):
        stale.unlink()
    path = folder / source.name
    shutil.copy(source, path)
    try:
        spec = importlib.util.spec_from_file_location(
            f"dagfile_{source.stem}_{time.time_ns()}", path
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag = module.dag
        dag_run = dag.test(**test_kwargs)
        tis = dag_run.get_task_instances()
        return DagRunResult(
            dag_id=dag.dag_id,
            run_id=dag_run.run_id,
            state=str(dag_run.state),
            ti_states={ti.task_id: (str(ti.state) if ti.state else None) for ti in tis},
            try_numbers={ti.task_id: ti.try_number for ti in tis},
        )
    finally:
        path.unlink(missing_ok=True)
