"""Small helpers shared by the Airflow-level tests."""

from __future__ import annotations

import importlib
import json
import logging
import re
from datetime import datetime, timedelta
from typing import Any

import pytest


def hour_range(emu: Any, hours: int, ago: int = 0) -> tuple[datetime, datetime]:
    """Whole hours ending at the last full hour (minus ``ago`` hours) of the emulator's clock."""
    end = emu.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=ago)
    return end - timedelta(hours=hours), end


def task_log(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """Everything the tasks logged so far, exceptions included.

    Airflow 3's dag.test() prints task logs to stdout; Airflow 2's go through ``logging``,
    where pytest's handler holds them.
    """
    out, err = capfd.readouterr()
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    records = "\n".join(formatter.format(record) for record in caplog.records)
    return "\n".join((out, err, records))


def answered(emu: Any, method: str, path_regex: str) -> int:
    """Requests matching ``method`` and ``path_regex`` that the emulator has answered."""
    pattern = re.compile(path_regex)
    return sum(
        1 for r in emu.requests if r.status and r.method == method and pattern.search(r.path)
    )


def logs_path(export_id: str) -> str:
    return rf"/batch_exports/{re.escape(export_id)}/logs/?$"


def runs_path(export_id: str) -> str:
    return rf"/batch_exports/{re.escape(export_id)}/runs/?$"


def rebuild(trigger: Any) -> Any:
    """What Airflow 3 does at defer time and the triggerer at start: kwargs through JSON."""
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    return cls(**json.loads(json.dumps(kwargs)))
