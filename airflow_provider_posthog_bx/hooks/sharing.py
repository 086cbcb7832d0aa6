"""Shared reads: the waits on one export in one event loop answered from one read a poll round.

Every waiting trigger polls PostHog once a ``poll_interval``. Waits on the same export ask for
things one read can answer for all of them (the export's backfills, its runs, its logs), so each
wait joins the export's :class:`SharedRead` (one per event loop, kind of read, base URL, project
and export) and takes its answer from the export's last read:

- a wait alone on its export sends its own request;
- with two or more, the first poll after the read is ``max_age`` seconds old (or that finds the
  read made before it joined) reads again, once, while the others wait for that read (shielded,
  so a wait cancelled meanwhile does not cancel it for the rest);
- a wait the read cannot answer (what it asks for is not in it, or the read is older than an
  answer the wait already had) sends its own request;
- a wait that has not polled for three rounds (``max_age`` plus how long the last read took)
  has ended and no longer counts; a wait that knows it has ended leaves at once.

The read itself and how a wait's answer is taken from it are the caller's: :meth:`SharedRead.poll`
gets them as functions. The read is kept once per export; when fewer than two waits are left it
is dropped, so no listing outlives the waits it served.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

A = TypeVar("A")  # what one wait asks for (its backfill, interval, log cursor)
D = TypeVar("D")  # what one read holds
R = TypeVar("R")  # what one wait gets

Key = tuple[str, str, str, str]
"""What one read is shared by: (kind of read, base URL, project, batch export)."""

GONE_ROUNDS = 3
"""Rounds without a poll after which a wait counts as ended (final, timed out, cancelled)."""


@dataclass(eq=False)
class SharedRead(Generic[A, D]):
    """One export's last read and the waits it serves, in one event loop.

    :param waiters: wait -> (when it last polled, what it asks for).
    :param data: the last read (None: none usable).
    :param read_for: the waits the last read was made for (what they asked then).
    :param began: when the last read began (``time.monotonic()``).
    :param fetched_at: when it ended.
    :param round_seconds: how long it took (request budget queue included).
    """

    waiters: dict[Hashable, tuple[float, A]] = field(default_factory=dict)
    data: D | None = None
    read_for: frozenset[Hashable] = frozenset()
    began: float = -math.inf
    fetched_at: float = -math.inf
    round_seconds: float = 0.0
    fetching: asyncio.Task[None] | None = None
    pruned_at: float = -math.inf

    async def poll(
        self,
        waiter: Hashable,
        asks: A,
        *,
        max_age: float,
        read: Callable[[Mapping[Hashable, A], D | None], Awaitable[D]],
        answer: Callable[[D], R | None],
        alone: Callable[[], Awaitable[R]],
        not_before: float = -math.inf,
    ) -> R:
        """One poll of ``waiter``: its answer from the shared read, or from ``alone()``.

        :param asks: what this wait asks for now (handed to ``read`` with the others').
        :param max_age: the wait's poll interval: how old a read may be to answer it.
        :param read: makes a read for the waits given (and the previous read, or None).
        :param answer: the wait's answer from a read, or None if the read does not hold it.
        :param alone: the wait's own request.
        :param not_before: a read that began before this (``time.monotonic()``) is too old
            for this wait, which already had a newer answer of its own: it sends its own
            request again (as it would alone) rather than step back in time.
        """
        now = time.monotonic()
        self.waiters[waiter] = (now, asks)
        self._prune(now, max_age)
        if len(self.waiters) < 2:
            self._drop()
            return await alone()
        # A read older than a poll interval, or one made before this wait joined, is read
        # again (once for every wait that finds it so).
        for _ in range(2):
            if self._fresh_for(waiter, max_age):
                break
            if self.fetching is None:
                self.fetching = asyncio.get_running_loop().create_task(self._read(read))
            await asyncio.shield(self.fetching)
        usable = self.data is not None and self.began >= not_before
        found = answer(self.data) if usable and self.data is not None else None
        return found if found is not None else await alone()

    def leave(self, waiter: Hashable) -> None:
        """``waiter``'s wait has ended; a read with fewer than two waits left is dropped."""
        self.waiters.pop(waiter, None)
        if len(self.waiters) < 2:
            self._drop()

    def _prune(self, now: float, max_age: float) -> None:
        # Once a round, not at every poll: with thousands of waits on one export, a scan of
        # all of them at each of their polls would cost the loop N^2 steps a round.
        if now - self.pruned_at < max_age:
            return
        self.pruned_at = now
        gone = GONE_ROUNDS * (max_age + self.round_seconds)
        for other, (seen, _) in list(self.waiters.items()):
            if now - seen > gone:
                del self.waiters[other]

    def _fresh_for(self, waiter: Hashable, max_age: float) -> bool:
        fresh = time.monotonic() - self.fetched_at <= max_age
        return fresh and waiter in self.read_for

    def _drop(self) -> None:
        self.data, self.read_for = None, frozenset()
        self.began = self.fetched_at = -math.inf

    async def _read(self, read: Callable[[Mapping[Hashable, A], D | None], Awaitable[D]]) -> None:
        began = time.monotonic()
        try:
            asked = {waiter: asks for waiter, (_, asks) in self.waiters.items()}
            data = await read(asked, self.data)
            self.data, self.read_for = data, frozenset(asked)
            self.began, self.fetched_at = began, time.monotonic()
            self.round_seconds = self.fetched_at - began
        finally:
            self.fetching = None
            if not self.waiters:  # every wait left meanwhile: nobody needs this read
                self._drop()


_reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Key, SharedRead[Any, Any]]] = (
    weakref.WeakKeyDictionary()
)


def shared_read(key: Key) -> SharedRead[Any, Any]:
    """The running event loop's shared read for ``key`` (created on first use)."""
    reads = _reads.setdefault(asyncio.get_running_loop(), {})
    found = reads.get(key)
    if found is None:
        found = reads[key] = SharedRead()
    return found


def leave(key: Key, waiter: Hashable) -> None:
    """``waiter``'s wait on ``key`` has ended: it no longer counts, and the read is forgotten
    once nobody waits on it. Does nothing outside a running event loop."""
    try:
        reads = _reads.get(asyncio.get_running_loop())
    except RuntimeError:
        return
    shared = reads.get(key) if reads is not None else None
    if shared is None or reads is None:
        return
    shared.leave(waiter)
    if not shared.waiters and shared.fetching is None:
        del reads[key]
