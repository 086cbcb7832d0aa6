"""The sensors' triggers: plain-JSON kwargs, restarts, deferral timeouts, event validation."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from support import answered, logs_path, rebuild

from airflow_provider_posthog_bx._compat import (
    AirflowException,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_provider_posthog_bx.triggers.logs import BatchExportLogsTrigger
from airflow_provider_posthog_bx.triggers.run import BatchExportRunTrigger


class RecordingTI:
    """The slice of a task instance the sensors use outside Airflow: XCom pushes."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def defer(sensor) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": RecordingTI()})
    return deferred.value


def test_triggers_built_by_the_sensors_round_trip_through_plain_json(
    airflow_db, posthog_emulator_default, posthog_connection
):
    from airflow_provider_posthog_bx.sensors import BatchExportLogsSensor, BatchExportRunSensor

    export = posthog_emulator_default.create_batch_export()["id"]
    posthog_emulator_default.add_log(export, "seen before deferring")
    logs = defer(
        BatchExportLogsSensor(
            task_id="logs",
            batch_export_id=export,
            search="x",
            level="warn",
            deferrable=True,
            after="2020-01-01T00:00:00+00:00",
            poke_interval=5,
            timeout=600,
        )
    )
    run = defer(
        BatchExportRunSensor(
            task_id="run",
            batch_export_id=export,
            deferrable=True,
            poke_interval=5,
            timeout=600,
            data_interval_start="2026-01-01T00:00:00+00:00",
            data_interval_end="2026-01-01T01:00Z",
        )
    )
    for deferred, cls in ((logs, BatchExportLogsTrigger), (run, BatchExportRunTrigger)):
        trigger = deferred.trigger
        assert isinstance(trigger, cls)
        classpath, kwargs = trigger.serialize()
        assert classpath == f"{cls.__module__}.{cls.__qualname__}"
        assert json.loads(json.dumps(kwargs)) == kwargs  # plain JSON, nothing coerced
        assert rebuild(trigger).serialize() == (classpath, kwargs)
        assert deferred.method_name == "execute_complete"
        assert 590 < deferred.timeout.total_seconds() <= 600
        assert abs(kwargs["deadline"] - (time.time() + 600)) < 10
    kwargs = logs.trigger.serialize()[1]
    # The level is resolved once, to PostHog's name (WARN means WARNING).
    assert kwargs["level"] == "WARNING" and kwargs["search"] == "x"
    assert kwargs["project_id"] == posthog_emulator_default.project_id
    assert kwargs["progress_interval"] == 1800.0  # a checkpoint at most every 30 minutes
    assert kwargs["look_back"] == 300.0  # seconds of logs read again at every poll
    # The entry read before deferring is behind the cursor the trigger starts from.
    assert len(kwargs["cursor"]["seen"]) == 1
    assert run.trigger.serialize()[1]["data_interval_end"] == "2026-01-01T01:00:00Z"


class Echoes:
    """The trigger's log lines echoing PostHog entries (Airflow 3 logs through structlog to
    stdout, Airflow 2 through logging)."""

    def __init__(self, capfd, caplog) -> None:
        caplog.set_level("INFO")
        self.capfd, self.caplog, self.text = capfd, caplog, ""

    def __call__(self, message: str) -> int:
        self.text += self.capfd.readouterr().out
        lines = self.text.splitlines() + [r.getMessage() for r in self.caplog.records]
        pattern = re.compile(rf"PostHog \S+ INFO: {re.escape(message)}(\s+\[[\w.]+\].*)?$")
        return sum(1 for line in lines if pattern.search(line.rstrip()))


@pytest.fixture
def echoed(capfd, caplog):
    return Echoes(capfd, caplog)


def test_logs_trigger_echoes_entries_itself_sends_small_events_and_survives_a_restart(
    airflow_db, posthog_emulator_default, posthog_connection, echoed
):
    emu = posthog_emulator_default
    export = emu.create_batch_export()["id"]
    start = emu.now() - timedelta(seconds=2)  # the 1,200 entries are older than "now"
    kwargs = BatchExportLogsTrigger(
        posthog_conn_id=posthog_connection,
        project_id=emu.project_id,
        batch_export_id=export,
        cursor={"timestamp": start.isoformat().replace("+00:00", "Z"), "seen": []},
        search="target",
        poll_interval=0.1,
        deadline=time.time() + 60,
    ).serialize()[1]
    emu.add_logs(
        export,
        [
            (start + timedelta(milliseconds=i), "INFO", f"line {i} " + "x" * 400)
            for i in range(1200)
        ],
    )

    async def first_event(trigger, stop_after_reads=None):
        runner = trigger.run()
        task = asyncio.ensure_future(runner.__anext__())
        while not task.done():
            await asyncio.sleep(0.02)
            if stop_after_reads and answered(emu, "GET", logs_path(export)) >= stop_after_reads:
                task.cancel()  # the triggerer dies before the target is logged
                with pytest.raises(asyncio.CancelledError):
                    await task
                await runner.aclose()
                return None
        event = task.result()
        await runner.aclose()
        return event.payload

    async def scenario():
        assert await first_event(rebuild_from(kwargs), stop_after_reads=4) is None
        emu.add_log(export, "the target line")
        restarted = await first_event(rebuild_from(kwargs))
        emu.add_log(export, "after the target")
        resume_at = {"after": restarted["entry"]["timestamp"]}  # as a sensor would defer
        later = await first_event(rebuild_from(dict(kwargs, cursor=resume_at, search="after")))
        return restarted, later

    restarted, later = asyncio.run(scenario())
    # Nothing is lost across the restart; the event carries the deciding entry and counts only.
    assert restarted["status"] == "match"
    assert restarted["entry"]["message"] == "the target line"
    assert restarted["read"] == 1201
    assert set(restarted) == {"status", "batch_export_id", "entry", "read", "deadline"}
    assert len(json.dumps(restarted)) < 1_000  # 1,201 entries of ~450 bytes were read
    # The trigger echoed every entry itself: the killed one some, the restarted one all.
    assert echoed("the target line") == 1
    assert all(1 <= echoed(f"line {i} " + "x" * 400) <= 2 for i in range(1200))
    assert later["status"] == "match" and later["read"] == 1
    assert echoed("after the target") == 1


def rebuild_from(kwargs):
    return BatchExportLogsTrigger(**json.loads(json.dumps(kwargs)))


def test_logs_trigger_checkpoints_after_progress_interval_and_times_out(
    airflow_db, posthog_emulator_default, posthog_connection, echoed
):
    emu = posthog_emulator_default
    export = emu.create_batch_export()["id"]
    start = emu.now()
    emu.add_logs(export, [(start + timedelta(microseconds=i), "INFO", f"n{i}") for i in range(230)])
    base = dict(
        posthog_conn_id=posthog_connection,
        project_id=emu.project_id,
        batch_export_id=export,
        cursor={"timestamp": start.isoformat(), "seen": []},
        search="never",
        poll_interval=0.1,
        progress_interval=0,
    )

    async def one(trigger):
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    progress = asyncio.run(one(BatchExportLogsTrigger(**base, deadline=time.time() + 30)))
    assert progress["status"] == "progress" and progress["read"] == 230
    assert "entries" not in progress and sum(echoed(f"n{i}") for i in range(230)) == 230
    # From the checkpoint nothing is new: no further checkpoint (nothing read), then timeout.
    timeout = asyncio.run(
        one(
            BatchExportLogsTrigger(
                **dict(base, cursor=progress["cursor"]), deadline=time.time() + 0.3
            )
        )
    )
    assert timeout["status"] == "timeout" and timeout["read"] == 0
    assert sum(echoed(f"n{i}") for i in range(230)) == 230
    # A trigger deferred by 0.2 (with progress_entries) still loads.
    old = dict(base, progress_entries=200, deadline=time.time() + 30)
    assert "progress_entries" not in rebuild_from(old).serialize()[1]


def test_redeferral_keeps_the_first_deadline_and_soft_fail(
    airflow_db, posthog_emulator_default, posthog_connection
):
    from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_2_PLUS
    from airflow_provider_posthog_bx.sensors import BatchExportLogsSensor

    if AIRFLOW_V_3_2_PLUS:
        from airflow.sdk.exceptions import AirflowSensorTimeout
    else:
        from airflow.exceptions import AirflowSensorTimeout

    export = posthog_emulator_default.create_batch_export()["id"]
    cursor = {"after": "2026-11-29T09:59:59.999999Z", "seen": []}
    entry = {
        "timestamp": "2026-11-29T10:00:01Z",
        "level": "INFO",
        "message": "chatter",
        "instance_id": "i",
        "log_source_id": export,
    }

    def sensor(**kwargs):
        return BatchExportLogsSensor(
            task_id="s",
            batch_export_id=export,
            deferrable=True,
            poke_interval=1,
            timeout=600,
            **kwargs,
        )

    deadline = time.time() + 30
    progress = {"status": "progress", "cursor": cursor, "entries": [entry], "deadline": deadline}
    with pytest.raises(TaskDeferred) as deferred:
        sensor().execute_complete({}, progress)
    assert 20 < deferred.value.timeout.total_seconds() <= 30
    assert deferred.value.trigger.serialize()[1]["deadline"] == deadline
    assert deferred.value.trigger.serialize()[1]["cursor"] == cursor

    late = dict(progress, deadline=time.time() - 1)
    with pytest.raises(AirflowSensorTimeout):
        sensor().execute_complete({}, late)
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).execute_complete({}, late)
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).execute_complete(
            {}, {"status": "timeout", "cursor": cursor, "entries": [], "deadline": deadline}
        )


@pytest.mark.parametrize(
    "event",
    [
        None,
        {},
        "done",
        {"status": "finished"},
        {"status": "match", "cursor": {}, "entries": []},
        {"status": "progress", "entries": []},
        {"status": "progress", "entries": [], "cursor": {"timestamp": "x"}, "deadline": 1.0},
        {"status": "progress", "read": 3, "deadline": 1.0},
        {"status": "match", "read": 3, "entries": "not a list", "entry": {}},
    ],
)
def test_logs_sensor_rejects_missing_or_unknown_events(event):
    from airflow_provider_posthog_bx.sensors import BatchExportLogsSensor

    sensor = BatchExportLogsSensor(task_id="s", batch_export_id="e", deferrable=True)
    with pytest.raises(AirflowException, match="Logs trigger sent"):
        sensor.execute_complete({}, event)


@pytest.mark.parametrize(
    "event", [None, {}, {"status": "success"}, {"status": "final"}, {"status": "final", "run": 3}]
)
def test_run_sensor_rejects_missing_or_unknown_events(event):
    from airflow_provider_posthog_bx.sensors import BatchExportRunSensor

    sensor = BatchExportRunSensor(task_id="s", batch_export_id="e", deferrable=True)
    with pytest.raises(AirflowException, match="Run trigger sent"):
        sensor.execute_complete({}, event)
