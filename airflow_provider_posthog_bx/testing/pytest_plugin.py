"""Pytest fixtures for testing DAGs against the PostHog emulator (opt-in plugin).

Load it from your top-level ``conftest.py``::

    pytest_plugins = ["airflow_provider_posthog_bx.testing.pytest_plugin"]

Fixtures (all function-scoped):

``posthog_emulator``
    A factory. ``posthog_emulator(**kwargs)`` starts ``PostHogEmulator(**kwargs)`` and returns
    it; every emulator it started is stopped at teardown. Timings you do not pass default to
    ``FAST_TIMINGS`` (0.2 s for the create delay, ``Starting`` and each run), so
    ``posthog_emulator()`` is a quick emulator and ``posthog_emulator(run_seconds=5)`` keeps
    the other fast timings. Throttling is off unless you pass ``rate_limit`` (a bare
    ``PostHogEmulator()`` throttles as PostHog Cloud does: 480/min and 4800/h per key).
``posthog_emulator_default``
    ``posthog_emulator()``: the emulator ``posthog_connection`` points at. To point the
    connection at a different one, override this fixture in your conftest::

        @pytest.fixture
        def posthog_emulator_default(posthog_emulator):
            return posthog_emulator(max_concurrent_backfills=1)

``posthog_connection``
    Points the Airflow connection ``posthog_default`` at ``posthog_emulator_default`` (through
    ``AIRFLOW_CONN_POSTHOG_DEFAULT``, so no metadata database is needed) and returns the
    connection id. The variable is restored at teardown.

For an emulator of your own, ``connection_dict``/``connection_env`` build the same connection::

    monkeypatch.setenv(CONN_ENV, connection_env(emulator))

This module imports neither Airflow nor anything outside the standard library but pytest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ._emulator import PostHogEmulator

__all__ = [
    "CONN_ENV",
    "CONN_ID",
    "FAST_DEFAULTS",
    "FAST_TIMINGS",
    "EmulatorFactory",
    "connection_dict",
    "connection_env",
    "posthog_connection",
    "posthog_emulator",
    "posthog_emulator_default",
]

CONN_ID = "posthog_default"
CONN_ENV = "AIRFLOW_CONN_POSTHOG_DEFAULT"
FAST_TIMINGS: dict[str, float] = {
    "backfill_create_delay": 0.2,
    "backfill_starting_seconds": 0.2,
    "run_seconds": 0.2,
}
# What the fixtures pass besides FAST_TIMINGS: a DAG test should not wait out PostHog's
# throttle windows (pass ``rate_limit=(480, 4800)`` to test a client's 429 handling).
FAST_DEFAULTS: dict[str, Any] = {**FAST_TIMINGS, "rate_limit": None}

EmulatorFactory = Callable[..., PostHogEmulator]


def connection_dict(emulator: PostHogEmulator, api_key: str | None = None) -> dict[str, Any]:
    """An Airflow ``posthog`` connection (as a dict) for a started emulator.

    :param api_key: the key the connection presents; default the emulator's own (scopes ``*``).
    """
    return {
        "conn_type": "posthog",
        "host": emulator.url,
        "password": emulator.api_key if api_key is None else api_key,
        "extra": {"project_id": emulator.project_id},
    }


def connection_env(emulator: PostHogEmulator, api_key: str | None = None) -> str:
    """``connection_dict`` as the JSON an ``AIRFLOW_CONN_<ID>`` environment variable takes."""
    return json.dumps(connection_dict(emulator, api_key))


@pytest.fixture
def posthog_emulator() -> Iterator[EmulatorFactory]:
    """Factory: ``posthog_emulator(**kwargs)`` -> a started emulator, stopped at teardown."""
    started: list[PostHogEmulator] = []

    def start(**kwargs: Any) -> PostHogEmulator:
        emulator = PostHogEmulator(**{**FAST_DEFAULTS, **kwargs})
        started.append(emulator)  # before start(): a failed start is still cleaned up
        return emulator.start()

    yield start
    for emulator in reversed(started):
        emulator.stop()


@pytest.fixture
def posthog_emulator_default(posthog_emulator: EmulatorFactory) -> PostHogEmulator:
    """A started emulator with ``FAST_DEFAULTS``; the one ``posthog_connection`` points at."""
    return posthog_emulator()


@pytest.fixture
def posthog_connection(
    posthog_emulator_default: PostHogEmulator, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Point the ``posthog_default`` Airflow connection at the emulator; returns the conn id."""
    monkeypatch.setenv(CONN_ENV, connection_env(posthog_emulator_default))
    return CONN_ID
