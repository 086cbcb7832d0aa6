"""Fixtures for operator tests: emulators with per-test timings, pointed at by posthog_default."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_posthog_bx.testing import PostHogEmulator

FAST = {"backfill_create_delay": 0.2, "backfill_starting_seconds": 0.2, "run_seconds": 0.2}


@pytest.fixture
def make_emulator(
    airflow_db: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., PostHogEmulator]]:
    """Start an emulator with the given options and point ``posthog_default`` at it."""
    started: list[PostHogEmulator] = []

    def make(**options: Any) -> PostHogEmulator:
        emu = PostHogEmulator(**{**FAST, **options}).start()
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
