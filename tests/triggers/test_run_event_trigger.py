"""BatchExportRunEventTrigger (for AssetWatcher) over real HTTP against the emulator.

The asset state store is Airflow 3.3's; here the trigger gets a stand-in with the same two
async methods (``aget``/``aset``, values through JSON), so its restarts can be driven from a
test. The real store and triggerer restarts are exercised in tests/e2e/test_asset_watcher.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta
from typing import Any

import pytest
from support import answered, rebuild, runs_path

from airflow_provider_posthog_bx.core.runs import RunWatch
from airflow_provider_posthog_bx.triggers import BatchExportRunEventTrigger


class StateStore:
    """The asset state store's async accessors, values kept as JSON text like Airflow's."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.dumps(value)


class Watcher:
    """One trigger run (what the triggerer does for an AssetWatcher), consumed in the
    background while a test moves the emulator on."""

    def __init__(self, trigger: BatchExportRunEventTrigger, store: StateStore) -> None:
        self.trigger = rebuild(trigger)  # as the triggerer builds it: kwargs through JSON
        self.trigger.asset_state_store = self.store = store
        self.events: list[dict[str, Any]] = []
        self._read = 0
        self._task: asyncio.Task[None] | None = None

    async def _consume(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    async def collect(self, polls: int) -> list[dict[str, Any]]:
        """The events sent during the next ``polls`` poll intervals."""
        if self._task is None:
            self._task = asyncio.create_task(self._consume())
        await asyncio.sleep(polls * self.trigger.poll_interval)
        if self._task.done():
            self._task.result()  # a crashed watcher fails the test with its error
        new, self._read = self.events[self._read :], len(self.events)
        return new

    async def baseline(self) -> None:
        """Start the watcher and wait until its first listing (the baseline) is stored."""
        for _ in range(200):
            await self.collect(polls=0)
            if RunWatch.from_json(await self.store.aget(self.trigger.state_key)).baselined:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the watcher took no baseline within 10 s")

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def make_trigger(emu, conn_id, export_id, **kwargs) -> BatchExportRunEventTrigger:
    return BatchExportRunEventTrigger(
        batch_export_id=export_id,
        posthog_conn_id=conn_id,
        project_id=emu.project_id,
        poll_interval=kwargs.pop("poll_interval", 0.3),
        **kwargs,
    )


def hours_ago(emu, n: int):
    end = emu.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=n - 1)
    return end - timedelta(hours=1), end


def test_fires_once_per_run_completed_after_the_watch_started_and_never_for_older_ones(
    airflow_db, posthog_emulator_default, posthog_connection
):
    emu = posthog_emulator_default
    export = emu.create_batch_export()["id"]
    done_before = emu.add_run(export, *hours_ago(emu, 3))
    failed_before = emu.add_run(export, *hours_ago(emu, 4), status="Failed")
    running = emu.add_run(export, *hours_ago(emu, 2), running_for=600)

    async def scenario():
        watcher = Watcher(make_trigger(emu, posthog_connection, export), StateStore())
        await watcher.baseline()
        assert await watcher.collect(polls=2) == []  # the runs finished before never fire
        emu.advance(601)  # the run that was Running at the start completes
        first = await watcher.collect(polls=3)
        later = emu.add_run(export, *hours_ago(emu, 1), records_completed=42, running_for=600)
        assert await watcher.collect(polls=2) == []  # Running: nothing yet
        emu.advance(601)
        second = await watcher.collect(polls=4)
        await watcher.stop()
        return first, second, later

    first, second, later = asyncio.run(scenario())
    assert [e["id"] for e in first] == [running["id"]]
    assert [e["id"] for e in second] == [later["id"]]
    event = second[0]
    assert event == {
        "batch_export_id": export,
        "id": later["id"],
        "data_interval_start": later["data_interval_start"],
        "data_interval_end": later["data_interval_end"],
        "status": "Completed",
        "records_completed": 42,
        "bytes_exported": event["bytes_exported"],
        "backfill": None,
    }
    assert done_before["id"] not in {e["id"] for e in first + second}
    assert failed_before["id"] not in {e["id"] for e in first + second}


def test_a_restarted_watcher_fires_what_finished_while_it_was_down_and_nothing_twice(
    airflow_db, posthog_emulator_default, posthog_connection
):
    emu = posthog_emulator_default
    export = emu.create_batch_export()["id"]
    store = StateStore()
    trigger = make_trigger(emu, posthog_connection, export)

    async def scenario():
        first = Watcher(trigger, store)
        await first.baseline()
        fired = emu.add_run(export, *hours_ago(emu, 2))
        seen = await first.collect(polls=2)
        await first.stop()  # the triggerer dies
        while_down = emu.add_run(export, *hours_ago(emu, 1))
        second = Watcher(trigger, store)  # restarted: same kwargs, same stored state
        after = await second.collect(polls=3)
        await second.stop()
        fresh = Watcher(trigger, StateStore())  # Airflow < 3.3: no store, a new baseline
        await fresh.baseline()
        none = await fresh.collect(polls=2)
        await fresh.stop()
        return fired, seen, while_down, after, none

    fired, seen, while_down, after, none = asyncio.run(scenario())
    assert [e["id"] for e in seen] == [fired["id"]]
    assert [e["id"] for e in after] == [while_down["id"]]  # not fired["id"] again
    assert none == []
    stored = json.loads(store.values[trigger.state_key])
    assert RunWatch.from_json(stored).baselined
    assert set(stored["handled"]) == {fired["id"], while_down["id"]}


def test_failed_runs_fire_only_when_asked_and_each_poll_is_one_request(
    airflow_db, posthog_emulator_default, posthog_connection
):
    emu = posthog_emulator_default
    export = emu.create_batch_export()["id"]

    async def scenario():
        only_completed = Watcher(make_trigger(emu, posthog_connection, export), StateStore())
        with_failed = Watcher(
            make_trigger(emu, posthog_connection, export, include_failed=True), StateStore()
        )
        await asyncio.gather(only_completed.baseline(), with_failed.baseline())
        for hour in range(1, 121):  # more runs than one page holds
            emu.add_run(export, *hours_ago(emu, hour + 10), created_at=emu.now())
        failed = emu.add_run(export, *hours_ago(emu, 1), status="Failed", latest_error="boom")
        before = answered(emu, "GET", runs_path(export))
        a, b = await asyncio.gather(only_completed.collect(3), with_failed.collect(3))
        polls = answered(emu, "GET", runs_path(export)) - before
        await only_completed.stop()
        await with_failed.stop()
        return failed, a, b, polls

    failed, a, b, polls = asyncio.run(scenario())
    assert failed["id"] not in {e["id"] for e in a}
    assert len({e["id"] for e in a}) == len(a)  # never twice
    statuses = {e["id"]: e["status"] for e in b}
    assert statuses[failed["id"]] == "Failed"
    # Two watchers, about three polls each: one request a poll although 121 runs are listed.
    assert 2 <= polls <= 2 * 4


def test_serialize_is_deterministic_so_every_parse_is_the_same_watcher(posthog_connection):
    trigger = BatchExportRunEventTrigger(batch_export_id="abc", poll_interval=30)
    again = BatchExportRunEventTrigger(batch_export_id="abc", poll_interval=30)
    assert trigger.serialize() == again.serialize() == rebuild(trigger).serialize()
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_posthog_bx.triggers.run_event.BatchExportRunEventTrigger"
    assert kwargs == {
        "batch_export_id": "abc",
        "posthog_conn_id": "posthog_default",
        "project_id": None,
        "poll_interval": 30.0,
        "include_failed": False,
        "window": 21600.0,
    }


@pytest.mark.parametrize("stored", [None, {"handled": "junk"}, "text"])
def test_unusable_stored_state_means_a_new_baseline(stored):
    watch = RunWatch.from_json(stored)
    assert not watch.baselined and watch.handled == {}
