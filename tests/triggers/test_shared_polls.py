"""Backfill waits in one triggerer share one listing per export and poll round, over real HTTP.

Each wait still gets exactly one event, with its own backfill and status; a wait alone on its
export polls its own backfill. Run waits share one run listing (over the union of their
intervals) and log waits one read of the export's logs, the same way.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import timedelta

from support import answered, logs_path, runs_path

from airflow_provider_posthog_bx.core.logs import LogCursor, entry_time
from airflow_provider_posthog_bx.core.time import format_instant, from_posthog
from airflow_provider_posthog_bx.hooks.posthog import PostHogHook
from airflow_provider_posthog_bx.testing.pytest_plugin import (
    CONN_ENV,
    connection_dict,
    connection_env,
)
from airflow_provider_posthog_bx.triggers.backfill import BatchExportBackfillTrigger
from airflow_provider_posthog_bx.triggers.logs import BatchExportLogsTrigger
from airflow_provider_posthog_bx.triggers.run import BatchExportRunTrigger


def wait_for(emu, export_id: str, backfill_id: str) -> BatchExportBackfillTrigger:
    return BatchExportBackfillTrigger(
        posthog_conn_id="posthog_default",
        project_id=emu.project_id,
        batch_export_id=export_id,
        backfill_id=backfill_id,
        poll_interval=0.3,
        deadline=time.time() + 60,
        not_found_until=time.time() + 30,
    )


def test_waits_on_one_export_share_a_listing_and_each_gets_its_own_event(
    make_emulator, monkeypatch
):
    emu = make_emulator(
        backfill_create_delay=0.2,
        backfill_starting_seconds=0.2,
        run_seconds=0.4,
        max_concurrent_backfills=10,
    )
    monkeypatch.setenv(CONN_ENV, connection_env(emu))
    shared = emu.create_batch_export(interval="hour")
    alone = emu.create_batch_export(interval="hour")
    hook = PostHogHook("posthog_default")
    end = emu.now().replace(minute=0, second=0, microsecond=0)
    ids = {}
    for n in range(5):
        if n == 2:
            emu.script_next_backfill(shared["id"], "Failed", after_runs=1, error="disk full")
        start = end - timedelta(hours=3 * (n + 1))
        ids[n] = hook.create_backfill(
            shared["id"], start.isoformat(), (start + timedelta(hours=3)).isoformat()
        )
    lone = hook.create_backfill(
        alone["id"], (end - timedelta(hours=3)).isoformat(), end.isoformat()
    )
    emu.clear_requests()

    async def first_event(trigger):
        async for event in trigger.run():
            return event.payload
        return None

    async def main():
        waits = [wait_for(emu, shared["id"], b) for b in ids.values()]
        waits.append(wait_for(emu, alone["id"], lone))
        return await asyncio.gather(*(first_event(t) for t in waits))

    events = asyncio.run(main())
    got = {e["backfill_id"]: e["backfill"]["status"] for e in events}
    assert got == {**dict.fromkeys(ids.values(), "Completed"), ids[2]: "Failed", lone: "Completed"}
    assert all(e["status"] == "final" for e in events)
    listings = answered(emu, "GET", re.escape(shared["id"]) + r"/backfills/?$")
    own = answered(emu, "GET", re.escape(shared["id"]) + r"/backfills/[^/]+/?$")
    # The wait alone on its export polls its own backfill, once a round, and never lists.
    assert answered(emu, "GET", re.escape(alone["id"]) + r"/backfills/?$") == 0
    rounds = answered(emu, "GET", re.escape(alone["id"]) + r"/backfills/[^/]+/?$")
    assert rounds >= 3
    # Five waits of the same length on one export: per-wait polling would send about
    # 5 x rounds requests; sharing sends about one listing a round, plus first polls.
    assert listings >= 2
    assert listings + own <= 2 * rounds + 5, (listings, own, rounds)


# -- run waits ----------------------------------------------------------------------------


def unbudgeted(emu) -> str:
    """The connection with a request budget that never holds the waits back: the rounds are
    then the poll interval's, and the request counts are the waits' own."""
    conn = connection_dict(emu)
    conn["extra"]["trigger_requests_per_minute"] = 60_000
    return json.dumps(conn)


def run_wait(emu, export_id: str, start, end) -> BatchExportRunTrigger:
    return BatchExportRunTrigger(
        posthog_conn_id="posthog_default",
        project_id=emu.project_id,
        batch_export_id=export_id,
        data_interval_start=format_instant(start),
        data_interval_end=format_instant(end),
        poll_interval=0.3,
        deadline=time.time() + 60,
    )


async def first_event(trigger):
    async for event in trigger.run():
        return event.payload
    return None


def test_run_waits_on_one_export_share_a_listing_and_each_gets_its_own_run(
    make_emulator, monkeypatch
):
    emu = make_emulator()
    monkeypatch.setenv(CONN_ENV, unbudgeted(emu))
    shared = emu.create_batch_export(interval="hour")["id"]
    alone = emu.create_batch_export(interval="hour")["id"]
    hour = timedelta(hours=1)
    top = emu.now().replace(minute=0, second=0, microsecond=0)
    # Five waited intervals with a gap between the second and the third; the gap has a run
    # nobody waits for, inside the shared listing's range.
    intervals = [(top - n * hour, top - (n - 1) * hour) for n in (6, 5, 3, 2, 1)]
    emu.add_run(shared, top - 4 * hour, top - 3 * hour, status="Failed", running_for=0.1)
    # An older failed try of the third interval: the newest run (by created_at) is the one.
    emu.add_run(
        shared, *intervals[2], status="Failed", created_at=emu.now() - hour, latest_error="old"
    )
    expected = {}
    for n, (start, end) in enumerate(intervals):
        status = "Failed" if n == 3 else "Completed"
        run = emu.add_run(
            shared,
            start,
            end,
            status=status,
            latest_error="disk full" if status == "Failed" else None,
            running_for=1.5 + 0.1 * n,
        )
        expected[(start, end)] = (run["id"], status)
    # The same last hour on another export, failing there: a wait that took it from the
    # shared export's listing would report Completed.
    lone = emu.add_run(alone, *intervals[-1], status="Failed", latest_error="auth", running_for=1.5)
    emu.clear_requests()

    async def main():
        waits = [run_wait(emu, shared, start, end) for start, end in intervals]
        waits.append(run_wait(emu, alone, *intervals[-1]))
        return await asyncio.gather(*(first_event(t) for t in waits))

    events = asyncio.run(main())
    assert all(e["status"] == "final" for e in events), events
    got = {
        (
            from_posthog(e["run"]["data_interval_start"]),
            from_posthog(e["run"]["data_interval_end"]),
        ): (
            e["run"]["id"],
            e["run"]["status"],
        )
        for e in events[:-1]
    }
    assert got == expected
    assert [e["batch_export_id"] for e in events] == [shared] * 5 + [alone]
    assert (events[-1]["run"]["id"], events[-1]["run"]["status"]) == (lone["id"], "Failed")

    def listings(export_id):
        return [
            r.query
            for r in emu.requests
            if r.status and r.method == "GET" and re.search(runs_path(export_id), r.path)
        ]

    # The wait alone on its export lists its own interval, once a round.
    own = listings(alone)
    rounds = len(own)
    assert rounds >= 4
    assert all(q["start"] == [format_instant(intervals[-1][0])] for q in own)
    # Five waits on one export: per-wait polling would send about 5 x rounds listings; sharing
    # sends about one a round, over the union of the waits' intervals.
    union = {
        "ordering": ["-data_interval_start"],
        "start": [format_instant(intervals[0][0])],
        "end": [format_instant(intervals[-1][1])],
    }
    mine = listings(shared)
    assert sum(q == union for q in mine) >= rounds - 2, mine
    assert len(mine) <= 2 * rounds + 3, (len(mine), rounds)


# -- log waits ----------------------------------------------------------------------------


def log_wait(emu, export_id: str, after, **kwargs) -> BatchExportLogsTrigger:
    return BatchExportLogsTrigger(
        posthog_conn_id="posthog_default",
        project_id=emu.project_id,
        batch_export_id=export_id,
        cursor=LogCursor.newer_than(after).to_json(),
        poll_interval=0.3,
        deadline=time.time() + 60,
        **kwargs,
    )


def test_log_waits_on_one_export_share_a_read_and_each_sees_exactly_its_entries(
    make_emulator, monkeypatch
):
    emu = make_emulator()
    monkeypatch.setenv(CONN_ENV, unbudgeted(emu))
    shared = emu.create_batch_export(interval="hour")["id"]
    alone = emu.create_batch_export(interval="hour")["id"]
    t0 = emu.now() - timedelta(seconds=1)
    # 600 older entries (two pages of 500 a read), 30 of them sharing one timestamp where the
    # first page ends while the feed below adds entries on top.
    bulk = []
    for i in range(1, 601):
        stamp = t0 + timedelta(microseconds=10 * (90 if 90 <= i < 120 else i))
        bulk.append((stamp, "INFO", f"bulk {i}"))
    for export_id in (shared, alone):
        emu.add_logs(export_id, bulk)
    later = emu.now() + timedelta(seconds=2.5)  # a wait reading only what comes after this
    emu.clear_requests()

    async def feed():
        for i in range(24):
            await asyncio.sleep(0.2)
            emu.add_log(shared, f"chatter {i}")
            emu.add_log(alone, f"chatter {i}")
            if i == 3:
                emu.add_log(shared, "slow destination", level="WARNING")
            if i == 5:
                late_stamp = emu.now()
            if i == 8:
                # Logged earlier, visible only now: each wait reading that far back sees it once.
                emu.add_log(shared, "late arrival", timestamp=late_stamp, visible_after=0.4)
            if i == 14:
                emu.add_log(shared, "disk full", level="ERROR")
            if i == 20:
                emu.add_log(shared, "the target line")
                emu.add_log(alone, "the other target")

    async def main():
        waits = [
            log_wait(emu, shared, t0, search="target", fail_on_error=False),
            log_wait(emu, shared, t0, search="never"),
            log_wait(emu, shared, t0, level="WARNING", fail_on_error=False),
            log_wait(emu, shared, later, search="TARGET", fail_on_error=False),
            log_wait(emu, alone, t0, search="other target"),
        ]
        feeding = asyncio.ensure_future(feed())
        events = await asyncio.gather(*(first_event(t) for t in waits))
        await feeding
        return events

    events = asyncio.run(main())
    outcome = [(e["status"], e.get("entry", {}).get("message")) for e in events]
    assert outcome == [
        ("match", "the target line"),
        ("error_entry", "disk full"),
        ("match", "slow destination"),
        ("match", "the target line"),
        ("match", "the other target"),
    ]

    def newer(export_id, after, entry):
        decided = entry_time(entry)
        return sum(1 for e in emu.logs(export_id) if after < entry_time(e) <= decided)

    # Each wait processed every entry between its cursor and its deciding entry exactly once
    # (the late one included where it was visible by then), as it would have alone.
    starts = [t0, t0, t0, later]
    for event, after in zip(events[:-1], starts, strict=True):
        assert event["read"] == newer(shared, after, event["entry"]), event
    assert events[-1]["read"] == newer(alone, t0, events[-1]["entry"])
    own = answered(emu, "GET", logs_path(alone))
    mine = answered(emu, "GET", logs_path(shared))
    # The wait alone reads two pages a round; four waits on one export sharing one read a
    # round send about as many, where each reading alone would send about three times that
    # (two of them end early).
    assert own >= 2 * 4
    assert mine <= 1.5 * own + 8, (mine, own)
