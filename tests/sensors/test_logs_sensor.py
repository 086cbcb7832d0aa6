"""BatchExportLogsSensor in real Airflow (dag.test) against the emulator over HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dag_runner import run_dag
from support import logs_path

from airflow_provider_posthog_bx.core.time import format_instant
from airflow_provider_posthog_bx.exceptions import PostHogInputError

from .conftest import echo_count

HEADER = "from airflow_provider_posthog_bx.sensors import BatchExportLogsSensor\n"


def logs_requests(emu, export_id):
    return [r for r in emu.requests if r.path.rstrip("/").endswith(f"{export_id}/logs")]


def test_logs_sensor_finds_entries_in_every_mode(
    airflow_db, posthog_emulator_default, posthog_connection, background, task_output
):
    emu = posthog_emulator_default
    ids = {
        name: emu.create_batch_export(name=name)["id"]
        for name in (
            "search",
            "level",
            "pages_poke",
            "pages_defer",
            "tie_poke",
            "tie_defer",
            "now",
            "progress",
            "resched",
        )
    }
    now = emu.now()
    after = now - timedelta(minutes=1)
    old = after - timedelta(minutes=1)

    # search: case-insensitive substring; an older matching entry does not count.
    emu.add_log(ids["search"], "Batch export finished successfully (before `after`)", timestamp=old)
    emu.add_log(ids["search"], "Batch export for range A starting.")
    emu.add_log(ids["search"], "Batch export for range A finished successfully: 100 records.")

    # level, found by the trigger (the entry arrives after the sensor deferred).
    emu.add_log(ids["level"], "routine line")
    background.after_requests(
        logs_path(ids["level"]),
        2,
        lambda: emu.add_log(ids["level"], "disk nearly full", level="WARNING"),
    )

    # 1,200 entries arrive at once between two reads; the match is among the oldest, and
    # every timestamp is shared by three entries, so page edges cut through ties.
    def bulk(export_id):
        def add():
            base = emu.now()
            emu.add_logs(
                export_id,
                [
                    (
                        base + timedelta(milliseconds=i // 3),
                        "INFO",
                        f"bulk {i} needle" if i == 5 else f"bulk {i}",
                    )
                    for i in range(1200)
                ],
            )

        return add

    background.after_requests(logs_path(ids["pages_poke"]), 1, bulk(ids["pages_poke"]))
    background.after_requests(logs_path(ids["pages_defer"]), 2, bulk(ids["pages_defer"]))

    # Two entries share a timestamp: one is read first, the other arrives later.
    tie = now - timedelta(seconds=5)
    for name, reads in (("tie_poke", 1), ("tie_defer", 2)):
        emu.add_log(ids[name], f"{name} first at T", timestamp=tie)
        background.after_requests(
            logs_path(ids[name]),
            reads,
            lambda name=name: emu.add_log(ids[name], f"{name} second at T", timestamp=tie),
        )

    # Without `after`, entries from before the sensor started are ignored.
    emu.add_log(ids["now"], "old target", timestamp=now - timedelta(seconds=1))
    background.after_requests(
        logs_path(ids["now"]), 1, lambda: emu.add_log(ids["now"], "new target")
    )

    # A chatty export: the trigger echoes 250 non-matching entries itself; with
    # progress_interval=0 it then checkpoints (a small event) and the task defers again from
    # the new cursor; the match comes later.
    background.after_requests(
        logs_path(ids["progress"]),
        2,
        lambda: emu.add_logs(
            ids["progress"],
            [(emu.now() + timedelta(microseconds=i), "INFO", f"chatter {i}") for i in range(250)],
        ),
    )
    background.after_requests(
        logs_path(ids["progress"]), 4, lambda: emu.add_log(ids["progress"], "progress target")
    )

    # Reschedule mode: every poke is a new task run; the cursor must survive between them.
    emu.add_log(ids["resched"], "resched old one")
    background.after_requests(
        logs_path(ids["resched"]), 2, lambda: emu.add_log(ids["resched"], "resched target")
    )

    result = run_dag(
        HEADER
        + f"""
common = dict(poke_interval=0.2, timeout=45)
after = {after.isoformat()!r}
BatchExportLogsSensor(task_id="search", batch_export_id={ids["search"]!r},
                      search="FINISHED successfully", after=after, **common)
BatchExportLogsSensor(task_id="level", batch_export_id={ids["level"]!r}, level="warning",
                      after=after, deferrable=True, **common)
BatchExportLogsSensor(task_id="pages_poke", batch_export_id={ids["pages_poke"]!r},
                      search="needle", **common)
BatchExportLogsSensor(task_id="pages_defer", batch_export_id={ids["pages_defer"]!r},
                      search="needle", deferrable=True, **common)
BatchExportLogsSensor(task_id="tie_poke", batch_export_id={ids["tie_poke"]!r},
                      search="second at T", after=after, **common)
BatchExportLogsSensor(task_id="tie_defer", batch_export_id={ids["tie_defer"]!r},
                      search="second at T", after=after, deferrable=True, **common)
BatchExportLogsSensor(task_id="now", batch_export_id={ids["now"]!r}, search="target", **common)
BatchExportLogsSensor(task_id="progress", batch_export_id={ids["progress"]!r},
                      search="target", deferrable=True, progress_interval=0, **common)
BatchExportLogsSensor(task_id="resched", batch_export_id="{{{{ params.export }}}}",
                      params={{"export": {ids["resched"]!r}, "after": after}}, search="target",
                      after="{{{{ params.after }}}}", mode="reschedule",
                      **dict(common, poke_interval=0.3))
"""
    )
    background.check()
    out = task_output()

    assert result.ti_states == dict.fromkeys(ids, "success"), result.ti_states
    message = {task: (result.xcom(task) or {}).get("message") for task in ids}
    assert message == {
        "search": "Batch export for range A finished successfully: 100 records.",
        "level": "disk nearly full",
        "pages_poke": "bulk 5 needle",
        "pages_defer": "bulk 5 needle",
        "tie_poke": "tie_poke second at T",
        "tie_defer": "tie_defer second at T",
        "now": "new target",
        "progress": "progress target",
        "resched": "resched target",
    }
    assert result.xcom("level")["level"] == "WARNING"
    # The link is pushed before waiting.
    assert result.xcom("search", key="batch_export_url") == (
        f"{emu.url}/project/{emu.project_id}/pipeline/batch-exports/{ids['search']}"
    )

    # Every new entry is echoed once, with PostHog's timestamp and level.
    assert echo_count(out, "INFO", "Batch export for range A starting.") == 1
    assert echo_count(out, "INFO", "Batch export finished successfully (before `after`)") == 0
    assert echo_count(out, "WARNING", "disk nearly full") == 1
    assert echo_count(out, "INFO", "old target") == 0
    entry = result.xcom("search")
    assert f"PostHog {entry['timestamp']} INFO: {entry['message']}" in out

    # Paging: more than a page arrived between two reads; `before` was used, nothing missed.
    for name in ("pages_poke", "pages_defer"):
        paged = [r for r in logs_requests(emu, ids[name]) if "before" in r.query]
        assert len(paged) >= 2, name
        assert all(r.query["limit"] == ["500"] for r in logs_requests(emu, ids[name]))
    for i in range(6):
        text = "bulk 5 needle" if i == 5 else f"bulk {i}"
        assert echo_count(out, "INFO", text) == 2  # once per sensor (poke and deferrable)
    assert echo_count(out, "INFO", "bulk 6") == 0

    # Shared timestamp: the later entry is found, the earlier one is not echoed twice, and
    # reads ask from just before the shared timestamp.
    for name in ("tie_poke", "tie_defer"):
        assert echo_count(out, "INFO", f"{name} first at T") == 1
        assert echo_count(out, "INFO", f"{name} second at T") == 1
        later = logs_requests(emu, ids[name])[1:]
        assert later and all(r.query["after"][0] < format_instant(tie) for r in later)

    # Progress: the trigger echoed the 250 chatty entries once each, then checkpointed.
    assert "The trigger read and echoed 250 new PostHog log entries; still waiting" in out
    assert sum(echo_count(out, "INFO", f"chatter {i}") for i in range(250)) == 250

    # Reschedule: three or more pokes, each a new run of the task, echoed the old entry once.
    assert len(logs_requests(emu, ids["resched"])) >= 3
    assert echo_count(out, "INFO", "resched old one") == 1
    assert leftover_cursor_records() == []


def leftover_cursor_records():
    """Reschedule-mode cursors left behind: Variables (any line) and task state store rows."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_3_PLUS

    with create_session() as session:
        rows = (
            session.query(Variable.key).filter(Variable.key.like("posthog_bx_logs_cursor_%")).all()
        )
        left = [row[0] for row in rows]
        if AIRFLOW_V_3_3_PLUS:
            from airflow.models.task_state_store import TaskStateStoreModel as Row

            stored = session.query(Row).filter(Row.key == "posthog_bx:logs_cursor").all()
            left += [f"{row.dag_id}.{row.task_id}" for row in stored]
    return left


def test_late_visible_entries_are_found_once_in_every_mode(
    airflow_db, posthog_emulator_default, posthog_connection, background, task_output
):
    """PostHog ingests logs asynchronously: an entry older than one already read shows up
    later. The look-back window finds it, and neither entry is echoed twice."""
    emu = posthog_emulator_default
    ids = {
        name: emu.create_batch_export(name=name)["id"]
        for name in ("late_poke", "late_defer", "late_resched")
    }
    now = emu.now()
    for name, export in ids.items():
        emu.add_log(export, f"{name} newer line", timestamp=now)
        # After the first read, an entry 30 s older than the one read appears, and becomes
        # visible 0.5 s later still.
        background.after_requests(
            logs_path(export),
            1,
            lambda name=name, export=export: emu.add_log(
                export,
                f"{name} late target",
                timestamp=now - timedelta(seconds=30),
                visible_after=0.5,
            ),
        )
    result = run_dag(
        HEADER
        + f"""
from datetime import timedelta

common = dict(poke_interval=0.2, timeout=15, search="target",
              after={(now - timedelta(minutes=1)).isoformat()!r})
BatchExportLogsSensor(task_id="late_poke", batch_export_id={ids["late_poke"]!r}, **common)
BatchExportLogsSensor(task_id="late_defer", batch_export_id={ids["late_defer"]!r},
                      deferrable=True, **common)
BatchExportLogsSensor(task_id="late_resched", batch_export_id={ids["late_resched"]!r},
                      mode="reschedule", look_back=timedelta(minutes=2), **common)
"""
    )
    background.check()
    out = task_output()
    assert result.ti_states == dict.fromkeys(ids, "success"), result.ti_states
    for name in ids:
        assert result.xcom(name)["message"] == f"{name} late target"
        assert echo_count(out, "INFO", f"{name} newer line") == 1, name
        assert echo_count(out, "INFO", f"{name} late target") == 1, name
        # Every read after the first asked again from before the newer entry.
        later = logs_requests(emu, ids[name])[1:]
        assert later and all(r.query["after"][0] < format_instant(now) for r in later)
    assert leftover_cursor_records() == []


def test_reschedule_cursor_is_removed_on_final_failure_and_on_kill(
    airflow_db, posthog_emulator_default, posthog_connection, background, task_output
):
    emu = posthog_emulator_default
    failing = emu.create_batch_export(name="failing")["id"]
    killed = emu.create_batch_export(name="killed")["id"]
    emu.add_log(failing, "before the key lost its access")
    # After the first poke saved its cursor, PostHog refuses every logs request.
    background.after_requests(
        logs_path(failing),
        1,
        lambda: emu.add_fault("GET", logs_path(failing), status=403, times=None),
    )
    result = run_dag(
        HEADER
        + f"""
from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_posthog_bx._task_state import TaskRecord

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import task
else:
    from airflow.decorators import task

after = "2020-01-01T00:00:00+00:00"
BatchExportLogsSensor(task_id="failing", batch_export_id={failing!r}, search="never",
                      mode="reschedule", poke_interval=0.2, timeout=30, retries=0,
                      after=after)

@task
def kill(**context):
    sensor = BatchExportLogsSensor(task_id="kill", batch_export_id={killed!r},
                                   search="never", mode="reschedule", after=after)
    assert sensor.poke(context) is False
    record = TaskRecord.for_context(context, "logs_cursor")
    saved = record.get()
    sensor.on_kill()
    return {{"saved": saved is not None, "after_kill": record.get()}}

kill()
"""
    )
    background.check()
    out = task_output()
    assert result.ti_states == {"failing": "failed", "kill": "success"}, result.ti_states
    assert leftover_cursor_records() == []
    assert echo_count(out, "INFO", "before the key lost its access") == 1
    assert result.xcom("kill") == {"saved": True, "after_kill": None}


def test_logs_sensor_failures_and_timeouts(
    airflow_db, posthog_emulator_default, posthog_connection, background, task_output
):
    emu = posthog_emulator_default
    ids = {
        name: emu.create_batch_export(name=name)["id"]
        for name in (
            "error_poke",
            "error_defer",
            "error_wanted",
            "errors_ignored",
            "timeout_soft",
            "timeout_poke",
            "bad_level",
        )
    }
    emu.add_log(ids["error_poke"], "before the error")
    emu.add_log(ids["error_poke"], "Poke mode: destination bucket gone", level="ERROR")
    background.after_requests(
        logs_path(ids["error_defer"]),
        2,
        lambda: emu.add_log(ids["error_defer"], "Deferred: destination bucket gone", level="ERROR"),
    )
    emu.add_log(ids["error_wanted"], "Quota exceeded for destination", level="ERROR")
    emu.add_log(ids["errors_ignored"], "transient glitch", level="ERROR")
    emu.add_log(ids["errors_ignored"], "recovered target")
    emu.add_log(ids["timeout_soft"], "nothing to see")
    after = (emu.now() - timedelta(minutes=1)).isoformat()

    result = run_dag(
        HEADER
        + f"""
common = dict(poke_interval=0.2, timeout=45, after={after!r})
BatchExportLogsSensor(task_id="error_poke", batch_export_id={ids["error_poke"]!r},
                      search="never logged", **common)
BatchExportLogsSensor(task_id="error_defer", batch_export_id={ids["error_defer"]!r},
                      search="never logged", deferrable=True, **common)
BatchExportLogsSensor(task_id="error_wanted", batch_export_id={ids["error_wanted"]!r},
                      level="ERROR", search="quota", **common)
BatchExportLogsSensor(task_id="errors_ignored", batch_export_id={ids["errors_ignored"]!r},
                      search="target", fail_on_error=False, **common)
BatchExportLogsSensor(task_id="timeout_soft", batch_export_id={ids["timeout_soft"]!r},
                      search="never logged", deferrable=True, soft_fail=True,
                      **dict(common, timeout=1.0))
BatchExportLogsSensor(task_id="timeout_poke", batch_export_id={ids["timeout_poke"]!r},
                      search="never logged", **dict(common, timeout=0.6))
BatchExportLogsSensor(task_id="bad_level", batch_export_id={ids["bad_level"]!r},
                      level="{{{{ 'verbose' }}}}", **common)
"""
    )
    background.check()
    out = task_output()
    assert result.ti_states == {
        "error_poke": "failed",
        "error_defer": "failed",
        "error_wanted": "success",
        "errors_ignored": "success",
        "timeout_soft": "skipped",
        "timeout_poke": "failed",
        "bad_level": "failed",
    }
    for text in ("Poke mode: destination bucket gone", "Deferred: destination bucket gone"):
        assert "logged ERROR at " in out and f": {text}" in out
        assert echo_count(out, "ERROR", text) == 1
        assert any("BatchExportJobFailed" in line and text in line for line in out.splitlines())
    assert result.xcom("error_wanted")["message"] == "Quota exceeded for destination"
    assert result.xcom("errors_ignored")["message"] == "recovered target"
    assert echo_count(out, "ERROR", "transient glitch") == 1
    assert "level is not a PostHog log level (got 'verbose')" in out
    assert logs_requests(emu, ids["bad_level"]) == []  # rejected before any request


def test_arguments_are_checked_before_any_request(
    airflow_db, posthog_emulator_default, posthog_connection
):
    from airflow_provider_posthog_bx.sensors import BatchExportLogsSensor

    export = posthog_emulator_default.create_batch_export()["id"]
    cases = [
        (
            dict(level="verbose"),
            "level is not a PostHog log level (got 'verbose'); pass one of "
            "DEBUG, LOG, INFO, WARNING, ERROR, CRITICAL or WARN",
        ),
        (dict(search=42), "search must be a string (got 42)"),
        (
            dict(after="2026-01-01T00:00:00"),
            "after must be timezone-aware (got '2026-01-01T00:00:00'); pass a timezone-aware",
        ),
        (dict(after="last tuesday"), "after is not a valid ISO datetime (got 'last tuesday')"),
    ]
    for kwargs, message in cases:
        sensor = BatchExportLogsSensor(task_id="s", batch_export_id=export, **kwargs)
        with pytest.raises(PostHogInputError) as raised:
            sensor.execute({})
        assert message in str(raised.value)
    assert posthog_emulator_default.requests == []
