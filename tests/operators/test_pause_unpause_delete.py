"""PauseOperator, UnpauseOperator and DeleteOperator inside real Airflow against the emulator."""

from __future__ import annotations

import re
from typing import Any

import pytest
from dag_runner import run_dag
from support import task_log

IMPORT = (
    "from airflow_provider_posthog_bx.operators import "
    "DeleteOperator, PauseOperator, UnpauseOperator\n"
)


def count(emu: Any, method: str, suffix: str) -> int:
    return sum(
        1 for r in emu.requests if r.method == method and re.search(rf"/{suffix}/?$", r.path)
    )


def test_pause_and_unpause_are_idempotent(make_emulator: Any) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    eid = export["id"]
    result = run_dag(
        IMPORT
        + f"""
pause = PauseOperator(task_id="pause", batch_export_id={eid!r})
pause_again = PauseOperator(task_id="pause_again", batch_export_id={eid!r})
unpause = UnpauseOperator(task_id="unpause", batch_export_id={eid!r})
unpause_again = UnpauseOperator(task_id="unpause_again", batch_export_id={eid!r})
pause >> pause_again >> unpause >> unpause_again
"""
    )
    assert set(result.ti_states.values()) == {"success"}
    assert [result.xcom(t) for t in ("pause", "pause_again", "unpause", "unpause_again")] == [
        True,
        True,
        False,
        False,
    ]
    # The second pause and the second unpause found the export already in that state.
    assert count(emu, "POST", "pause") == 1
    assert count(emu, "POST", "unpause") == 1
    state = emu.get_batch_export(eid)
    assert state["paused"] is False
    assert state["last_paused_at"] is not None
    assert emu.backfills(eid) == []  # no backfill unless asked for


def test_unpause_with_backfill_backfills_the_paused_window(make_emulator: Any) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour", paused=True)
    emu.advance(2 * 3600)  # paused for two hours
    result = run_dag(
        IMPORT
        + f"UnpauseOperator(task_id='unpause', batch_export_id={export['id']!r}, backfill=True)\n"
    )
    assert result.ti_states == {"unpause": "success"}
    unpause = [r for r in emu.requests if r.path.rstrip("/").endswith("/unpause")]
    assert [r.body for r in unpause] == [{"backfill": True}]
    assert len(emu.backfills(export["id"])) == 1


def test_delete_with_and_without_missing_ok(
    make_emulator: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    eid = export["id"]
    result = run_dag(
        IMPORT
        + f"""
delete = DeleteOperator(task_id="delete", batch_export_id={eid!r})
again_ok = DeleteOperator(task_id="again_ok", batch_export_id={eid!r}, missing_ok=True)
again_strict = DeleteOperator(task_id="again_strict", batch_export_id={eid!r}, retries=2)
delete >> again_ok >> again_strict
"""
    )
    assert result.ti_states == {
        "delete": "success",
        "again_ok": "success",
        "again_strict": "failed",
    }
    assert result.xcom("delete") is True
    assert result.xcom("again_ok") is False
    assert result.try_numbers["again_strict"] == 1  # a missing export is not retried
    assert count(emu, "DELETE", eid) == 3
    assert emu.count("GET", rf"/batch_exports/{eid}/?$") == 0
    log = task_log(capfd, caplog)
    assert f"returned 404 (not_found): Not found. Batch export {eid} does not exist" in log
    assert "pass missing_ok=True" in log


def test_delete_whose_first_answer_was_lost_succeeds(make_emulator: Any) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    eid = export["id"]
    # PostHog deletes it, but a proxy answers 502; the retry then finds it gone.
    emu.add_fault("DELETE", rf"/batch_exports/{eid}/?$", status=502, process=True, times=1)
    result = run_dag(IMPORT + f"DeleteOperator(task_id='delete', batch_export_id={eid!r})\n")
    assert result.ti_states == {"delete": "success"}
    assert result.xcom("delete") is True
    assert [r.status for r in emu.requests if r.method == "DELETE"] == [502, 404]


def test_delete_of_a_missing_export_after_a_503_fails(make_emulator: Any) -> None:
    emu = make_emulator()
    # PostHog was unavailable (not processed); the retry's 404 is not this task's doing.
    emu.add_fault("DELETE", r"/batch_exports/never-existed/?$", status=503, times=1)
    result = run_dag(IMPORT + "DeleteOperator(task_id='delete', batch_export_id='never-existed')\n")
    assert result.ti_states == {"delete": "failed"}
    assert [r.status for r in emu.requests if r.method == "DELETE"] == [503, 404]


def test_delete_whose_connection_dropped_after_deleting_succeeds(make_emulator: Any) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    eid = export["id"]
    # PostHog deleted it, but the connection dropped before the answer.
    emu.add_fault("DELETE", rf"/batch_exports/{eid}/?$", drop=True, process=True, times=1)
    result = run_dag(IMPORT + f"DeleteOperator(task_id='delete', batch_export_id={eid!r})\n")
    assert result.ti_states == {"delete": "success"}
    assert result.xcom("delete") is True
    assert emu.count("DELETE", rf"/batch_exports/{eid}/?$") == 2
