"""The example DAGs as scheduled runs on the Celery deployment (PostgreSQL, Redis, two workers).

The test is ``tests/e2e``'s own, run against this package's ``deployment``; on top of it, every
task of every run must have been executed by a Celery worker.

That test seeds PostHog's run of the latest complete hour, then restarts the scheduler, which
makes the run sensor example's run of the latest complete hour then: if the hour turns in
between, the sensor waits for an hour nobody seeded, and the test times out. Started in the
last ``HOUR_TURN_MARGIN`` seconds of an hour, it waits for the next hour first.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from .. import test_example_dag_runs as examples
from ..deployment import wait_for
from .deployment import CeleryDeployment

pytestmark = pytest.mark.e2e

SCHEDULED = (examples.BACKFILL, "example_posthog_run_sensor", "example_posthog_logs_sensor")
# More than the test takes from seeding the hour to the scheduled runs (scheduler restart).
HOUR_TURN_MARGIN = 120


def _seconds_into_hour() -> float:
    now = datetime.now(timezone.utc)
    return now.minute * 60 + now.second + now.microsecond / 1e6


def _wait_unless_the_hour_turns_soon() -> None:
    if _seconds_into_hour() < 3600 - HOUR_TURN_MARGIN:
        return
    wait_for(
        lambda: True if _seconds_into_hour() < 3600 - HOUR_TURN_MARGIN else None,
        "the hour to turn",
        HOUR_TURN_MARGIN + 5,
    )


def test_scheduled_runs_of_the_examples_succeed_on_celery(
    deployment: CeleryDeployment, batch_export: dict[str, Any]
) -> None:
    _wait_unless_the_hour_turns_soon()
    before = {dag_id: deployment.run_ids(dag_id) for dag_id in SCHEDULED}

    examples.test_scheduled_runs_of_the_examples_succeed(deployment, batch_export)

    workers: set[str] = set()
    for dag_id in SCHEDULED:
        [run_id] = deployment.run_ids(dag_id) - before[dag_id]
        workers |= deployment.assert_ran_on_celery(dag_id, run_id)
    assert workers, "no Celery worker ran the examples"
