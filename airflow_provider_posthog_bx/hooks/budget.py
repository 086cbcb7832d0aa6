"""A per-key request budget shared by every trigger in one triggerer event loop.

PostHog throttles each personal API key (480 requests/minute, 4,800/hour). Thousands of waits
polling on one key would ask for far more, so every request a trigger sends first takes a slot
from the key's budget. Slots are handed out in the order they are asked for (GCRA / virtual
scheduling), so when many waits share a key their polls are stretched evenly and none starves.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable

# 60/minute is 75% of PostHog's sustained 4,800/hour per key, leaving room for tasks and people
# using the same key. Set extra.trigger_requests_per_minute on the connection to change it.
DEFAULT_REQUESTS_PER_MINUTE = 60.0
DEFAULT_BURST = 20
# Requests one event loop has on the wire at once, all keys together; the shared client's pool
# holds exactly this many connections. Waiters queue on an asyncio.Semaphore (O(1) per request)
# rather than in httpcore's pool, which rescans every queued request on each assignment
# (encode/httpcore#1035): measured with 2,000 triggers, a pool queue made the triggerer spend
# seconds of CPU per request and never recover (benchmarks/triggerer_scale.py).
MAX_IN_FLIGHT = 32


class RequestBudget:
    """At most ``per_minute`` requests a minute on average, with bursts of up to ``burst``.

    :param per_minute: the average request rate allowed.
    :param burst: how many requests may go at once after a quiet period.
    """

    def __init__(
        self,
        per_minute: float = DEFAULT_REQUESTS_PER_MINUTE,
        burst: int = DEFAULT_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0:
            raise ValueError(f"per_minute must be positive (got {per_minute})")
        self.per_minute = per_minute
        self.burst = max(1, burst)
        self._interval = 60.0 / per_minute
        self._clock = clock
        # A new budget has been quiet forever: a full burst may go at once.
        self._next_free = clock() - (self.burst - 1) * self._interval
        self.granted = 0
        self.waited_seconds = 0.0

    def set_rate(self, per_minute: float) -> None:
        """Change the average rate from the next slot on."""
        if per_minute <= 0:
            raise ValueError(f"per_minute must be positive (got {per_minute})")
        self.per_minute = per_minute
        self._interval = 60.0 / per_minute

    def reserve(self) -> float:
        """Take the next slot; return how many seconds to wait before using it."""
        now = self._clock()
        earliest = now - (self.burst - 1) * self._interval
        self._next_free = max(self._next_free, earliest)
        wait = max(0.0, self._next_free - now)
        self._next_free += self._interval
        self.granted += 1
        self.waited_seconds += wait
        return wait

    async def acquire(self) -> None:
        """Wait for a slot (first come, first served)."""
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)

    def backlog_seconds(self) -> float:
        """How far ahead slots are already promised: the wait a new request would face."""
        return max(0.0, self._next_free - self._clock())


_budgets: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], RequestBudget]
] = weakref.WeakKeyDictionary()


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def in_flight_gate() -> asyncio.Semaphore:
    """The running event loop's cap on requests in flight (``MAX_IN_FLIGHT``, first come first
    served)."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(MAX_IN_FLIGHT)
    return gate


def budget_for(key: tuple[str, str], per_minute: float | None) -> RequestBudget:
    """The budget of one (base URL, key fingerprint) in the running event loop."""
    loop = asyncio.get_running_loop()
    budgets = _budgets.setdefault(loop, {})
    rate = per_minute or DEFAULT_REQUESTS_PER_MINUTE
    budget = budgets.get(key)
    if budget is None:
        budget = budgets[key] = RequestBudget(rate)
    elif rate < budget.per_minute:
        # Two connections with one key: the stricter share wins, and slots already promised stay.
        budget.set_rate(rate)
    return budget
