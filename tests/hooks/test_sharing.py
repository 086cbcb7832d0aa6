"""The shared-read mechanics every shared poll uses (hooks/sharing.py), with plain functions as
the read and the waits' own requests."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Hashable, Mapping

import pytest

from airflow_provider_posthog_bx.hooks import sharing
from airflow_provider_posthog_bx.hooks.sharing import SharedRead


class Export:
    """What the read and the waits' own requests see: a number that grows at every read."""

    def __init__(self, read_seconds: float = 0.0) -> None:
        self.reads: list[dict[Hashable, str]] = []
        self.own: list[Hashable] = []
        self.read_seconds = read_seconds

    async def read(self, asked: Mapping[Hashable, str], last: dict | None) -> dict:
        self.reads.append(dict(asked))
        await asyncio.sleep(self.read_seconds)
        return {"read": len(self.reads), "asked": dict(asked)}

    async def poll(self, shared: SharedRead, waiter: Hashable, max_age: float = 60.0, **kw):
        async def alone() -> str:
            self.own.append(waiter)
            return "own"

        return await shared.poll(
            waiter,
            f"asks {waiter}",
            max_age=max_age,
            read=self.read,
            answer=lambda data: f"read {data['read']}" if waiter in data["asked"] else None,
            alone=alone,
            **kw,
        )


def test_a_lone_wait_sends_its_own_and_two_share_one_read_a_round():
    async def main() -> None:
        export, shared = Export(), SharedRead()
        assert await export.poll(shared, "a", max_age=0.2) == "own"
        assert export.reads == [] and shared.data is None
        # A second wait: one read for both, handed what each asks for.
        assert await export.poll(shared, "b", max_age=0.2) == "read 1"
        assert export.reads == [{"a": "asks a", "b": "asks b"}]
        assert await export.poll(shared, "a", max_age=0.2) == "read 1"
        # Older than max_age: the first poll of the next round reads again, once.
        await asyncio.sleep(0.25)
        assert await export.poll(shared, "b", max_age=0.2) == "read 2"
        assert await export.poll(shared, "a", max_age=0.2) == "read 2"
        assert len(export.reads) == 2 and export.own == ["a"]

    asyncio.run(main())


def test_a_wait_joining_after_the_read_reads_again_and_polls_in_flight_wait_for_one():
    async def main() -> None:
        export, shared = Export(read_seconds=0.05), SharedRead()
        await export.poll(shared, "a")
        # Three waits at once: one read (begun once all three joined), which they all wait for.
        got = await asyncio.gather(*(export.poll(shared, w) for w in "bcd"))
        assert len(export.reads) == 1 and got == ["read 1"] * 3
        assert await export.poll(shared, "e") == "read 2"  # not read for: read again
        assert set(export.reads[-1]) == set("abcde")

    asyncio.run(main())


def test_a_wait_that_stopped_polling_for_three_rounds_no_longer_counts():
    async def main() -> None:
        export, shared = Export(), SharedRead()
        await export.poll(shared, "a", max_age=0.05)
        await export.poll(shared, "b", max_age=0.05)
        await asyncio.sleep(sharing.GONE_ROUNDS * 0.05 + 0.05)
        assert await export.poll(shared, "b", max_age=0.05) == "own"  # alone again
        assert shared.data is None and list(shared.waiters) == ["b"]

    asyncio.run(main())


def test_a_cancelled_wait_does_not_cancel_the_read_for_the_others():
    async def main() -> None:
        export, shared = Export(read_seconds=0.1), SharedRead()
        await export.poll(shared, "a")
        first = asyncio.ensure_future(export.poll(shared, "b"))
        second = asyncio.ensure_future(export.poll(shared, "a"))
        await asyncio.sleep(0.02)
        first.cancel()
        assert await second == "read 1"
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(main())


def test_a_read_older_than_the_waits_own_last_answer_does_not_answer_it():
    async def main() -> None:
        export, shared = Export(), SharedRead()
        await export.poll(shared, "a")
        assert await export.poll(shared, "b") == "read 1"
        assert await export.poll(shared, "a", not_before=time.monotonic()) == "own"
        assert await export.poll(shared, "b", not_before=-math.inf) == "read 1"
        assert len(export.reads) == 1 and export.own == ["a", "a"]

    asyncio.run(main())


def test_leaving_drops_the_read_and_the_last_one_out_forgets_the_export():
    key = ("logs", "http://127.0.0.1", "1", "export")

    async def main() -> None:
        export = Export()
        shared = sharing.shared_read(key)
        assert sharing.shared_read(key) is shared  # one per key and event loop
        await export.poll(shared, "a")
        await export.poll(shared, "b")
        assert shared.data is not None
        sharing.leave(key, "a")
        assert shared.data is None and list(shared.waiters) == ["b"]
        sharing.leave(key, "b")
        assert key not in sharing._reads[asyncio.get_running_loop()]

    asyncio.run(main())
    sharing.leave(key, "a")  # outside an event loop: nothing to do
