"""A deferred backfill in a real deployment: a crashed triggerer, a user marking it failed."""

from __future__ import annotations

from typing import Any

import pytest

from .deployment import Deployment, creates, start_deferred_backfill, trigger_logs, wait_for

pytestmark = pytest.mark.e2e

BACKFILL = "example_posthog_backfill"
TASK = "backfill_data_interval"
# 300 hourly runs at 1 s each of emulator time: in flight until the test ends it.
HOURS = 300


def test_backfill_wait_survives_a_triggerer_sigkill(
    deployment: Deployment, batch_export: dict[str, Any]
) -> None:
    emu = deployment.emulator
    waiting = start_deferred_backfill(deployment, BACKFILL, TASK, batch_export["id"], HOURS)
    run_id = waiting.run_id

    deployment.kill("triggerer")  # SIGKILL to its process group: supervisor and trigger runner
    polls_at_kill = emu.count("GET", waiting.polls)
    deployment.start("triggerer")
    assert deployment.task_instance(BACKFILL, run_id, TASK)["state"] == "deferred"

    # The new triggerer adopts the trigger once the dead one's heartbeat is stale.
    wait_for(
        lambda: True if emu.count("GET", waiting.polls) > polls_at_kill else None,
        "the new triggerer to take over the trigger and poll",
        120,
        details=lambda: f"{deployment.run_logs(BACKFILL, run_id)}\n{deployment.diagnostics()}",
    )
    assert emu.get_backfill(waiting.backfill_id)["status"] == "Running"
    emu.advance(HOURS * 2)  # the remaining runs finish now

    assert deployment.wait_run(BACKFILL, run_id) == "success"
    assert emu.count("POST", creates(batch_export["id"])) == 1
    [backfill] = emu.backfills(batch_export["id"])
    assert (backfill["id"], backfill["status"]) == (waiting.backfill_id, "Completed")
    assert deployment.xcom(BACKFILL, run_id, TASK) == waiting.backfill_id
    assert deployment.task_instance(BACKFILL, run_id, TASK)["try_number"] == 1
    # One trigger log per triggerer job that ran the trigger: the killed one and the new one.
    assert len(trigger_logs(deployment, BACKFILL, run_id, TASK)) == 2


def test_marking_the_deferred_task_failed_cancels_the_backfill(
    deployment: Deployment, batch_export: dict[str, Any]
) -> None:
    """Airflow 3.3 runs the trigger's on_kill when a user marks a deferred task failed."""
    emu = deployment.emulator
    waiting = start_deferred_backfill(deployment, BACKFILL, TASK, batch_export["id"], HOURS)
    run_id, backfill_id = waiting.run_id, waiting.backfill_id

    deployment.api(
        "PATCH",
        f"/dags/{BACKFILL}/dagRuns/{run_id}/taskInstances/{TASK}",
        json={"new_state": "failed"},
    )

    wait_for(
        lambda: True if emu.get_backfill(backfill_id)["status"] == "Cancelled" else None,
        f"backfill {backfill_id} to be cancelled in PostHog",
        60,
        details=lambda: (
            f"backfill: {emu.get_backfill(backfill_id)}\n{deployment.run_logs(BACKFILL, run_id)}"
        ),
    )
    assert emu.count("POST", rf"/backfills/{backfill_id}/cancel/?$") == 1
    assert emu.count("POST", creates(batch_export["id"])) == 1
    assert deployment.task_instance(BACKFILL, run_id, TASK)["state"] == "failed"
    assert deployment.wait_run(BACKFILL, run_id) == "failed"
    [log] = trigger_logs(deployment, BACKFILL, run_id, TASK)
    assert "Cancelled backfill" in log.read_text()
