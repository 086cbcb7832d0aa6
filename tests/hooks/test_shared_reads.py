"""AsyncPostHogHook's shared reads against the emulator: a wait answered from the read shared by
the waits on its export gets exactly what its own request would have returned, and sends none.

Each hook stands for one wait (as each trigger makes its own). ``max_age`` is long, so the one
read stays fresh through a test unless a rule says it must be read again.
"""

from __future__ import annotations

import asyncio
import random
import re
from datetime import timedelta

import pytest

from airflow_provider_posthog_bx.core import runs, statuses
from airflow_provider_posthog_bx.core.time import format_instant
from airflow_provider_posthog_bx.hooks import posthog_async, sharing
from airflow_provider_posthog_bx.hooks.posthog import PostHogHook
from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

from .conftest import FAST_RETRY, SECRET_KEY, hours_ago, iso

FRESH = 600.0


@pytest.fixture
def conn_id(emu, set_conn) -> str:
    """The emulator, with a request budget that never holds these tests back."""
    extra = {"project_id": emu.project_id, "trigger_requests_per_minute": 60_000}
    return set_conn(host=emu.url, password=SECRET_KEY, extra=extra)


def hooks(conn_id: str, n: int) -> list[AsyncPostHogHook]:
    return [AsyncPostHogHook(conn_id, retry_policy=FAST_RETRY) for _ in range(n)]


def sent(emu, export_id: str, route: str) -> int:
    pattern = re.compile(rf"/batch_exports/{re.escape(export_id)}/{route}/?$")
    return sum(1 for r in emu.requests if r.method == "GET" and pattern.search(r.path))


def test_run_waits_take_their_runs_from_one_listing_of_the_union(emu, conn_id, export):
    export_id = export["id"]
    for hour in range(250):  # three pages of 100
        emu.add_run(export_id, hours_ago(emu, hour + 1), hours_ago(emu, hour))
    for hour in (3, 120, 240):  # retries: two runs of one interval
        emu.add_run(export_id, hours_ago(emu, hour + 1), hours_ago(emu, hour), status="Failed")
    emu.add_run(export_id, hours_ago(emu, 12), hours_ago(emu, 10))  # two hours
    emu.add_run(export_id, None, hours_ago(emu, 5))  # no start: never listed by interval
    newest = (hours_ago(emu, 4), hours_ago(emu, 3))
    oldest = (hours_ago(emu, 241), hours_ago(emu, 240))
    checks = [(hours_ago(emu, a), hours_ago(emu, b)) for a, b in ((13, 9), (121, 119), (6, 0))]

    async def main() -> None:
        first, second, third, reference = hooks(conn_id, 4)

        async def own(interval: runs.Interval) -> list[dict]:
            return await reference.list_runs(export_id, **runs.interval_filters(*interval))

        # Alone: its own listing of its own interval.
        emu.clear_requests()
        got = await first.list_runs_shared(export_id, *oldest, max_age=FRESH)
        assert got == await own(oldest)
        assert emu.requests[0].query == {
            "ordering": ["-data_interval_start"],
            "start": [format_instant(oldest[0])],
            "end": [format_instant(oldest[1])],
        }
        # Two waits: one listing of the union, at most two pages; the older wait's interval
        # lies below them, so it lists its own.
        emu.clear_requests()
        assert await second.list_runs_shared(export_id, *newest, max_age=FRESH) == await own(newest)
        assert sent(emu, export_id, "runs") == 2 + 1  # two shared pages, the reference
        emu.clear_requests()
        assert await first.list_runs_shared(export_id, *oldest, max_age=FRESH) == await own(oldest)
        assert sent(emu, export_id, "runs") == 1 + 1  # its own, the reference
        # A third wait lets the listing read all three pages (the earlier read did not list
        # for it, so it is read again); now everyone is answered from it.
        emu.clear_requests()
        middle = (hours_ago(emu, 121), hours_ago(emu, 120))
        assert await third.list_runs_shared(export_id, *middle, max_age=FRESH) == await own(middle)
        assert sent(emu, export_id, "runs") == 3 + 1
        for hook, interval in ((first, oldest), (second, newest), (third, middle)):
            emu.clear_requests()
            assert await hook.list_runs_shared(export_id, *interval, max_age=FRESH) == await own(
                interval
            )
            assert sent(emu, export_id, "runs") == 1  # the reference only
        # Any interval inside the union is answered from the listing, in PostHog's order.
        for interval in checks[:2]:
            emu.clear_requests()
            got = await third.list_runs_shared(export_id, *interval, max_age=FRESH)
            assert got == await own(interval) and len(got) >= 2
            assert sent(emu, export_id, "runs") == 1
        # One reaching past it (newer than the newest wait's end) lists its own.
        emu.clear_requests()
        got = await third.list_runs_shared(export_id, *checks[2], max_age=FRESH)
        assert got == await own(checks[2])
        assert sent(emu, export_id, "runs") == 2
        await posthog_async.shared_client().aclose()

    asyncio.run(main())


def test_waits_on_different_exports_do_not_share(emu, conn_id):
    one = emu.create_batch_export(interval="hour")["id"]
    other = emu.create_batch_export(interval="hour")["id"]
    interval = (hours_ago(emu, 2), hours_ago(emu, 1))
    mine = emu.add_run(one, *interval)
    theirs = emu.add_run(other, *interval, status="Failed")

    async def main() -> None:
        first, second = hooks(conn_id, 2)
        for _ in range(3):
            got = await first.list_runs_shared(one, *interval, max_age=FRESH)
            assert [r["id"] for r in got] == [mine["id"]]
            got = await second.list_runs_shared(other, *interval, max_age=FRESH)
            assert [r["id"] for r in got] == [theirs["id"]]
        await posthog_async.shared_client().aclose()

    emu.clear_requests()
    asyncio.run(main())
    # Each alone on its export: its own listing at every poll.
    assert sent(emu, one, "runs") == 3 and sent(emu, other, "runs") == 3


def log_entries(base, count: int) -> list[tuple]:
    """``count`` entries, many sharing a timestamp (runs of up to 40 at one instant)."""
    rng = random.Random(7)
    out, stamp = [], base
    while len(out) < count:
        stamp += timedelta(microseconds=rng.choice((1, 3, 250, 10_000)))
        for _ in range(rng.choice((1, 1, 1, 2, 5, 40))):
            out.append((stamp, rng.choice(("INFO", "INFO", "WARNING", "ERROR")), f"m{len(out)}"))
    return out[:count]


def test_log_waits_are_answered_from_one_read_exactly_as_posthog_answers(emu, conn_id, export):
    export_id = export["id"]
    base = emu.now() - timedelta(minutes=30)
    entries = log_entries(base, 1_800)  # four pages of 500
    emu.add_logs(export_id, entries)
    stamps = sorted({stamp for stamp, _, _ in entries})
    rng = random.Random(11)

    async def main() -> None:
        first, second, reference = hooks(conn_id, 3)
        start = format_instant(base)
        emu.clear_requests()
        # Alone: its own request.
        alone = await first.get_logs_shared(export_id, after=start, limit=500, max_age=FRESH)
        assert sent(emu, export_id, "logs") == 1
        # Two waits: one read of everything after the earliest wait's ``after`` (four pages
        # back with ``before``), which answers both.
        emu.clear_requests()
        got = await second.get_logs_shared(export_id, after=start, limit=500, max_age=FRESH)
        assert 4 <= sent(emu, export_id, "logs") <= 5  # a tie at a page's end is asked again
        assert got == alone == await reference.get_logs(export_id, after=start, limit=500)
        # Any query after the read's ``after``, ties at every edge included: no request.
        for _ in range(150):
            after = rng.choice(stamps[:-1])
            before = rng.choice([None, *[s for s in stamps if s > after][:60]])
            limit = rng.choice((1, 7, 50, 500))
            bounds = {"after": format_instant(after), "limit": limit}
            if before is not None:
                bounds["before"] = format_instant(before)
            emu.clear_requests()
            got = await rng.choice((first, second)).get_logs_shared(
                export_id, **bounds, max_age=FRESH
            )
            assert sent(emu, export_id, "logs") == 0
            assert got == await reference.get_logs(export_id, **bounds), bounds
        # A query reaching below what was read goes to PostHog, and its answer is PostHog's.
        earlier = format_instant(base - timedelta(minutes=1))
        emu.add_log(export_id, "older than the read", timestamp=base - timedelta(seconds=30))
        emu.clear_requests()
        got = await first.get_logs_shared(
            export_id, after=earlier, before=format_instant(stamps[3]), limit=500, max_age=FRESH
        )
        assert sent(emu, export_id, "logs") == 1
        assert got[-1]["message"] == "older than the read"
        # ... unless the read holds the ``limit`` newest of them.
        emu.clear_requests()
        got = await second.get_logs_shared(export_id, after=earlier, limit=20, max_age=FRESH)
        assert sent(emu, export_id, "logs") == 0
        assert got == await reference.get_logs(export_id, after=earlier, limit=20)
        await posthog_async.shared_client().aclose()

    asyncio.run(main())


def test_a_log_wait_never_gets_a_read_older_than_its_own_last_answer(emu, conn_id, export):
    export_id = export["id"]
    base = emu.now() - timedelta(minutes=5)
    emu.add_logs(export_id, [(base + timedelta(seconds=i), "INFO", f"m{i}") for i in range(10)])
    start = format_instant(base)

    async def main() -> None:
        first, second = hooks(conn_id, 2)
        await first.get_logs_shared(export_id, after=start, limit=500, max_age=FRESH)
        await second.get_logs_shared(export_id, after=start, limit=500, max_age=FRESH)  # read
        # The first wait asks below the read: its own request, answered after the read.
        await first.get_logs_shared(
            export_id, after=format_instant(base - timedelta(hours=1)), limit=500, max_age=FRESH
        )
        emu.add_log(export_id, "new")
        emu.clear_requests()
        # Its next query is covered, but by a read older than that answer: it asks PostHog
        # again (as it would alone) and sees the new entry; the second wait, whose answers
        # are all from the read, still takes the read (fresh for another poll interval).
        got = await first.get_logs_shared(export_id, after=start, limit=500, max_age=FRESH)
        assert sent(emu, export_id, "logs") == 1 and got[0]["message"] == "new"
        got = await second.get_logs_shared(export_id, after=start, limit=500, max_age=FRESH)
        assert sent(emu, export_id, "logs") == 1 and got[0]["message"] == "m9"
        await posthog_async.shared_client().aclose()

    asyncio.run(main())


def test_leaving_forgets_the_read_once_fewer_than_two_wait(emu, conn_id, export):
    export_id = export["id"]
    interval = (hours_ago(emu, 2), hours_ago(emu, 1))
    emu.add_run(export_id, *interval)

    async def main() -> None:
        first, second = hooks(conn_id, 2)
        await first.list_runs_shared(export_id, *interval, max_age=FRESH)
        await second.list_runs_shared(export_id, *interval, max_age=FRESH)
        (shared,) = sharing._reads[asyncio.get_running_loop()].values()
        assert shared.data is not None and len(shared.waiters) == 2
        first.leave_shared()
        assert shared.data is None and len(shared.waiters) == 1  # the listing is dropped
        second.leave_shared()
        assert sharing._reads[asyncio.get_running_loop()] == {}
        await posthog_async.shared_client().aclose()

    asyncio.run(main())


def test_a_backfill_listing_keeps_only_what_its_waits_read(make_emulator, set_conn):
    # The listing lives as long as its waits: thousands of them in a triggerer. It keeps the
    # backfills they wait on (not the export's others), a final one's summary, and of those in
    # flight only status and progress, one entry for all in the same state.
    emu = make_emulator(
        backfill_create_delay=0.0, backfill_starting_seconds=600.0, max_concurrent_backfills=10
    )
    extra = {"project_id": emu.project_id, "trigger_requests_per_minute": 60_000}
    conn_id = set_conn(host=emu.url, password=SECRET_KEY, extra=extra)
    export_id = emu.create_batch_export(interval="hour")["id"]
    sync = PostHogHook(conn_id)
    ids = [
        sync.create_backfill(export_id, iso(hours_ago(emu, n + 2)), iso(hours_ago(emu, n + 1)))
        for n in range(6)
    ]
    sync.cancel_backfill(export_id, ids[3])
    waited = ids[1:5]

    async def main() -> tuple[list[dict[str, object]], dict[str, dict[str, object]]]:
        waits = hooks(conn_id, len(waited))

        async def poll_all() -> list[dict[str, object]]:
            polls = zip(waits, waited, strict=True)
            return await asyncio.gather(
                *(h.get_backfill_shared(export_id, b, max_age=FRESH) for h, b in polls)
            )

        await poll_all()  # every wait joins
        answers = await poll_all()  # one listing, made for all of them
        (shared,) = sharing._reads[asyncio.get_running_loop()].values()
        listed = dict(shared.data.backfills)
        for h in waits:
            h.leave_shared()
        await posthog_async.shared_client().aclose()
        return answers, listed

    answers, listed = asyncio.run(main())
    assert set(listed) == set(waited)  # not ids[0] and ids[5], which nobody waits on
    in_flight = [listed[b] for b in (ids[1], ids[2], ids[4])]
    assert in_flight[0] is in_flight[1] is in_flight[2]
    assert set(in_flight[0]) == {"status", "progress"} and in_flight[0]["status"] == "Starting"
    cancelled = answers[waited.index(ids[3])]
    assert cancelled == statuses.summary(sync.get_backfill(export_id, ids[3]))
    assert cancelled["status"] == "Cancelled" and cancelled["id"] == ids[3]
    assert listed[ids[3]] == cancelled
    for backfill_id, answer in zip(waited, answers, strict=True):
        if backfill_id != ids[3]:
            assert answer == {"status": "Starting", "progress": in_flight[0]["progress"]}
