"""Backfill waits in one triggerer share one listing per export and poll round, over real HTTP.

Each wait still gets exactly one event, with its own backfill and status; a wait alone on its
export polls its own backfill.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timedelta

from support import answered

from airflow_provider_posthog_bx.hooks.posthog import PostHogHook
from airflow_provider_posthog_bx.testing.pytest_plugin import CONN_ENV, connection_env
from airflow_provider_posthog_bx.triggers.backfill import BatchExportBackfillTrigger


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
