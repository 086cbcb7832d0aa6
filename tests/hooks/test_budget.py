"""RequestBudget: the per-key request budget triggers share (rate, burst, FIFO, backlog)."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_posthog_bx.hooks.budget import (
    DEFAULT_BURST,
    DEFAULT_REQUESTS_PER_MINUTE,
    RequestBudget,
    budget_for,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_rate_without_burst():
    clock = FakeClock()
    budget = RequestBudget(per_minute=60, burst=1, clock=clock)
    assert [budget.reserve() for _ in range(4)] == [0.0, 1.0, 2.0, 3.0]
    assert budget.granted == 4 and budget.waited_seconds == 6.0


def test_a_new_budget_allows_a_full_burst():
    clock = FakeClock()
    budget = RequestBudget(per_minute=120, burst=3, clock=clock)
    assert [budget.reserve() for _ in range(6)] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]


def test_burst_refills_at_the_rate():
    clock = FakeClock()
    budget = RequestBudget(per_minute=60, burst=3, clock=clock)
    for _ in range(3):
        budget.reserve()
    clock.advance(1.0)  # one slot back
    assert budget.reserve() == 0.0
    assert budget.reserve() == 1.0
    clock.advance(60.0)  # a long quiet period refills the burst, not more
    assert [budget.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_steady_rate_after_the_burst():
    clock = FakeClock()
    budget = RequestBudget(per_minute=600, burst=5, clock=clock)
    waits = [budget.reserve() for _ in range(30)]
    assert waits[:5] == pytest.approx([0.0] * 5, abs=1e-9)
    assert waits[5:] == pytest.approx([0.1 * k for k in range(1, 26)])
    assert budget.waited_seconds == pytest.approx(0.1 * 25 * 26 / 2)


def test_backlog_is_the_wait_a_new_request_would_face():
    clock = FakeClock()
    budget = RequestBudget(per_minute=60, burst=2, clock=clock)
    assert budget.backlog_seconds() == 0.0
    budget.reserve()
    assert budget.backlog_seconds() == 0.0  # one burst slot left
    budget.reserve()
    assert budget.backlog_seconds() == 1.0
    for _ in range(4):
        budget.reserve()
    assert budget.backlog_seconds() == 5.0
    clock.advance(2.0)
    assert budget.backlog_seconds() == 3.0
    assert budget.reserve() == 3.0
    clock.advance(100.0)
    assert budget.backlog_seconds() == 0.0


@pytest.mark.parametrize("rate", [0, -1])
def test_rate_must_be_positive(rate):
    with pytest.raises(ValueError, match=rf"per_minute must be positive \(got {rate}\)"):
        RequestBudget(per_minute=rate)


def test_burst_is_at_least_one():
    budget = RequestBudget(per_minute=60, burst=0, clock=FakeClock())
    assert budget.burst == 1
    assert [budget.reserve(), budget.reserve()] == [0.0, 1.0]


def test_defaults():
    budget = RequestBudget()
    assert (budget.per_minute, budget.burst) == (DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_BURST)
    assert (DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_BURST) == (60.0, 20)


def test_acquire_is_first_come_first_served():
    async def main() -> list[int]:
        budget = RequestBudget(per_minute=6000, burst=2)  # 10 ms apart after two
        order: list[int] = []

        async def worker(number: int) -> None:
            await budget.acquire()
            order.append(number)

        await asyncio.gather(*(worker(n) for n in range(12)))
        assert budget.granted == 12
        return order

    order = asyncio.run(main())
    assert order[2:] == list(range(2, 12))
    assert sorted(order[:2]) == [0, 1]


def test_budget_for_is_per_key_per_loop():
    async def main() -> tuple[RequestBudget, ...]:
        a = budget_for(("https://eu.posthog.com", "k1"), None)
        b = budget_for(("https://eu.posthog.com", "k1"), None)
        c = budget_for(("https://eu.posthog.com", "k2"), None)
        d = budget_for(("https://us.posthog.com", "k1"), None)
        assert a is b and a is not c and a is not d
        assert a.per_minute == DEFAULT_REQUESTS_PER_MINUTE
        # Two connections with one key share one budget; the stricter rate wins.
        looser = budget_for(("https://eu.posthog.com", "k1"), 120)
        assert looser is a and a.per_minute == DEFAULT_REQUESTS_PER_MINUTE
        stricter = budget_for(("https://eu.posthog.com", "k1"), 30)
        assert stricter is a and a.per_minute == 30
        return a, stricter

    first = asyncio.run(main())
    second = asyncio.run(main())
    assert first[0] is not second[0]


def test_budget_for_needs_a_running_loop():
    with pytest.raises(RuntimeError):
        budget_for(("https://eu.posthog.com", "k1"), None)
