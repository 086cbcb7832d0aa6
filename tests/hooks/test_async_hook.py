"""AsyncPostHogHook (httpx, used by triggers) against the emulator; each test runs its own loop."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest

from airflow_provider_posthog_bx import _compat, api
from airflow_provider_posthog_bx.exceptions import (
    PostHogAuthError,
    PostHogConfigError,
    PostHogNotFoundError,
    PostHogServerError,
    PostHogTransportError,
)
from airflow_provider_posthog_bx.hooks import budget as budget_module
from airflow_provider_posthog_bx.hooks import posthog_async
from airflow_provider_posthog_bx.hooks.posthog import PostHogHook
from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook
from airflow_provider_posthog_bx.testing.pytest_plugin import CONN_ENV, connection_env

from .conftest import FAST_RETRY, SECRET_KEY, arun, closed_port, hours_ago, iso


@pytest.fixture
def ahook(conn_id) -> AsyncPostHogHook:
    return AsyncPostHogHook(conn_id, retry_policy=FAST_RETRY)


def test_get_and_cancel_backfill(emu, hook, ahook, export):
    backfill_id = hook.create_backfill(export["id"], iso(hours_ago(emu, 3)), iso(hours_ago(emu, 1)))
    path = f"/api/projects/1/batch_exports/{export['id']}/backfills/{backfill_id}/"

    with pytest.raises(PostHogNotFoundError) as info:
        arun(ahook.get_backfill(export["id"], backfill_id))  # not created yet in PostHog
    assert info.value.path == path
    emu.advance(5)
    backfill = arun(ahook.get_backfill(export["id"], backfill_id))
    assert (backfill["id"], backfill["status"]) == (backfill_id, "Starting")

    emu.add_fault("POST", "/cancel/$", status=502)  # cancelling twice is harmless: retried
    assert arun(ahook.cancel_backfill(export["id"], backfill_id)) == {"cancelled": True}
    assert emu.get_backfill(backfill_id)["status"] == "Cancelled"
    assert [(r.method, r.path, r.status) for r in emu.requests[1:]] == [
        ("GET", path, 404),
        ("GET", path, 200),
        ("POST", f"{path}cancel/", 502),
        ("POST", f"{path}cancel/", 200),
    ]


def test_list_runs_follows_cursor_pages(emu, ahook, export):
    runs = [emu.add_run(export["id"], hours_ago(emu, i + 1), hours_ago(emu, i)) for i in range(130)]
    found = arun(ahook.list_runs(export["id"]))
    assert sorted(r["id"] for r in found) == sorted(r["id"] for r in runs)
    gets = emu.requests
    assert len(gets) == 2
    assert gets[0].query == {} and list(gets[1].query) == ["cursor"]


def test_list_runs_filters(emu, ahook, export):
    failed = emu.add_run(export["id"], hours_ago(emu, 2), hours_ago(emu, 1), status="Failed")
    emu.add_run(export["id"], hours_ago(emu, 1), hours_ago(emu, 0))
    found = arun(
        ahook.list_runs(export["id"], status=["Failed", "TimedOut"], ordering="-created_at")
    )
    assert [r["id"] for r in found] == [failed["id"]]
    assert emu.requests[-1].query == {"status": ["Failed", "TimedOut"], "ordering": ["-created_at"]}


def test_get_logs(emu, ahook, export):
    base = hours_ago(emu, 4)
    emu.add_logs(
        export["id"],
        [
            (base + timedelta(minutes=i), "ERROR" if i % 3 == 0 else "INFO", f"line {i}")
            for i in range(150)
        ],
    )
    every = arun(ahook.get_logs(export["id"], limit=500))
    assert len(every) == 150 and every[0]["message"] == "line 149"
    errors = arun(ahook.get_logs(export["id"], level="ERROR", search="LINE 1", limit=10))
    assert [e["message"] for e in errors] == [
        "line 147",
        "line 144",
        "line 141",
        "line 138",
        "line 135",
        "line 132",
        "line 129",
        "line 126",
        "line 123",
        "line 120",
    ]
    window = arun(
        ahook.get_logs(
            export["id"],
            after=iso(base + timedelta(minutes=10)),
            before=iso(base + timedelta(minutes=13)),
        )
    )
    assert [e["message"] for e in window] == ["line 12", "line 11"]
    assert emu.requests[-1].query == {
        "limit": ["50"],
        "after": [iso(base + timedelta(minutes=10))],
        "before": [iso(base + timedelta(minutes=13))],
    }
    with pytest.raises(PostHogConfigError, match="limit must be between 1 and 500"):
        arun(ahook.get_logs(export["id"], limit=0))


def test_retries_go_through_decide(emu, ahook, export):
    emu.add_fault("GET", "/runs/$", status=503)
    running = emu.add_run(export["id"], hours_ago(emu, 1), hours_ago(emu, 0), status="Running")

    async def main():
        runs = await ahook.list_runs(export["id"])
        budget = await ahook.budget()
        granted = budget.granted
        return runs, granted

    runs, granted = arun(main())
    assert [r["id"] for r in runs] == [running["id"]]
    assert [r.status for r in emu.requests] == [503, 200]
    assert granted == 2  # every try takes a slot from the budget


def test_retry_rules_match_the_sync_hook(emu, conn_id, export):
    policy = api.RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05)
    ahook = AsyncPostHogHook(conn_id, retry_policy=policy)
    emu.add_fault("GET", "/runs/$", status=503, times=None)
    with pytest.raises(PostHogServerError) as info:
        arun(ahook.list_runs(export["id"]))
    assert str(info.value).endswith("(after 3 tries)")
    assert emu.count("GET", "/runs/$") == 3
    emu.clear_faults()

    emu.add_fault("GET", "/runs/$", status=500)
    with pytest.raises(PostHogServerError):
        arun(ahook.list_runs(export["id"]))
    assert emu.count("GET", "/runs/$") == 4  # 500: one try

    emu.add_fault("GET", "/runs/$", malformed=True)
    assert arun(ahook.list_runs(export["id"])) == []
    assert emu.count("GET", "/runs/$") == 6

    emu.add_fault("GET", "/runs/$", drop=True)
    assert arun(ahook.list_runs(export["id"])) == []
    assert emu.count("GET", "/runs/$") == 8


def test_throttled_request_waits_retry_after(emu, ahook, export):
    emu.add_fault("GET", "/runs/$", status=429, retry_after=1)
    started = time.monotonic()
    assert arun(ahook.list_runs(export["id"])) == []
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in emu.requests] == [429, 200]


def test_transport_and_auth_errors(emu, set_conn, export):
    down = set_conn(
        "posthog_down",
        host=f"http://127.0.0.1:{closed_port()}",
        password=SECRET_KEY,
        extra={"project_id": 1},
    )
    policy = api.RetryPolicy(max_attempts=2, backoff_base=0.01)
    with pytest.raises(PostHogTransportError) as info:
        arun(AsyncPostHogHook(down, retry_policy=policy).get_backfill(export["id"], "b"))
    assert info.value.sent is False
    assert "could not connect to http://127.0.0.1:" in str(info.value)
    assert str(info.value).endswith("(after 2 tries)")

    bad = set_conn("posthog_bad", host=emu.url, password="phx_nope", extra={"project_id": 1})
    with pytest.raises(PostHogAuthError) as auth:
        arun(AsyncPostHogHook(bad, retry_policy=policy).list_runs(export["id"]))
    assert auth.value.status == 401
    assert emu.count("GET", ".") == 1


def test_missing_project(emu, set_conn, export):
    conn = set_conn("posthog_noproject", host=emu.url, password=SECRET_KEY)
    with pytest.raises(PostHogConfigError, match="No PostHog project id"):
        arun(AsyncPostHogHook(conn).list_runs(export["id"]))
    assert arun(AsyncPostHogHook(conn, project_id=1).list_runs(export["id"])) == []
    assert emu.requests[-1].path == f"/api/projects/1/batch_exports/{export['id']}/runs/"


# ---------------------------------------------------------------------------------------------
# Connection, client and budget sharing


def test_connection_is_resolved_through_compat(emu, conn_id, export, monkeypatch):
    asked: list[tuple[str, bool]] = []
    real = posthog_async.get_connection_async

    async def spy(name: str):
        asked.append((name, asyncio.get_running_loop().is_running()))
        return await real(name)

    monkeypatch.setattr(posthog_async, "get_connection_async", spy)
    ahook = AsyncPostHogHook(conn_id, retry_policy=FAST_RETRY)

    async def main():
        await ahook.list_runs(export["id"])
        await ahook.get_logs(export["id"])
        return await ahook.settings()

    settings = arun(main())
    assert asked == [("posthog_default", True)]  # resolved once, inside the loop
    assert settings == PostHogHook(conn_id).settings
    assert settings.base_url == emu.url and settings.project_id == 1


def test_waits_in_one_loop_read_a_connection_once_a_minute(
    emu, make_emulator, conn_id, export, monkeypatch
):
    asked: list[str] = []
    real = posthog_async.get_connection_async

    async def spy(name: str):
        asked.append(name)
        await asyncio.sleep(0.05)  # a triggerer's read is a round trip: waits start meanwhile
        return await real(name)

    monkeypatch.setattr(posthog_async, "get_connection_async", spy)
    other = make_emulator()
    other_export = other.create_batch_export()

    async def main():
        hooks = [AsyncPostHogHook(conn_id, retry_policy=FAST_RETRY) for _ in range(30)]
        await asyncio.gather(*(h.list_runs(export["id"]) for h in hooks))
        assert asked == [conn_id]  # 30 waits starting together: one read
        # The connection changes: waits starting within the minute still use the first read.
        monkeypatch.setenv(CONN_ENV, connection_env(other, api_key=SECRET_KEY))
        await AsyncPostHogHook(conn_id, retry_policy=FAST_RETRY).list_runs(export["id"])
        assert asked == [conn_id]
        # Once the read is older than SETTINGS_MAX_AGE, the next wait reads the new one.
        monkeypatch.setattr(posthog_async, "SETTINGS_MAX_AGE", 0.0)
        await AsyncPostHogHook(conn_id, retry_policy=FAST_RETRY).list_runs(other_export["id"])
        assert asked == [conn_id, conn_id]
        # Another project on the same connection is another reading.
        await AsyncPostHogHook(conn_id, project_id=1).list_runs(other_export["id"])
        assert asked == [conn_id, conn_id, conn_id]

    arun(main())
    assert emu.count("GET", "/runs/$") == 31
    assert other.count("GET", "/runs/$") == 2
    arun(AsyncPostHogHook(conn_id).list_runs(other_export["id"]))  # a new event loop reads again
    assert len(asked) == 4


def test_a_failed_connection_read_is_not_kept(emu, conn_id, export, monkeypatch):
    monkeypatch.delenv(CONN_ENV)

    async def main():
        hooks = [AsyncPostHogHook(conn_id, retry_policy=FAST_RETRY) for _ in range(5)]
        failed = await asyncio.gather(
            *(h.list_runs(export["id"]) for h in hooks), return_exceptions=True
        )
        assert all(isinstance(e, Exception) and conn_id in str(e) for e in failed), failed
        monkeypatch.setenv(CONN_ENV, connection_env(emu, api_key=SECRET_KEY))
        return await AsyncPostHogHook(conn_id, retry_policy=FAST_RETRY).list_runs(export["id"])

    assert arun(main()) == []
    assert emu.count("GET", "/runs/$") == 1


def test_compat_get_connection_async_reads_env_connections(emu, conn_id):
    conn = arun(_compat.get_connection_async(conn_id))
    assert (conn.conn_id, conn.host, conn.password) == (conn_id, emu.url, SECRET_KEY)
    assert conn.extra_dejson == {"project_id": 1}


def test_one_shared_client_per_event_loop(emu, conn_id, export):
    async def main():
        loop = asyncio.get_running_loop()
        assert posthog_async._clients.get(loop) is None
        first, second = (AsyncPostHogHook(conn_id, retry_policy=FAST_RETRY) for _ in range(2))
        await first.list_runs(export["id"])
        client = posthog_async._clients.get(loop)
        assert client is not None  # the hook registered the loop's client
        await second.list_runs(export["id"])
        assert posthog_async._clients.get(loop) is client
        assert posthog_async.shared_client() is client
        assert not client.is_closed
        return client

    one = arun(main())
    two = arun(main())
    assert one is not two
    assert one.is_closed and two.is_closed
    assert emu.count("GET", "/runs/$") == 4


def test_a_response_body_does_not_outlive_its_request(emu, conn_id, export):
    """httpx keeps each response in a reference cycle, which a triggerer's cycle collector
    may not reach for a long time: the body must not hang on it."""
    import gc

    import httpx

    for n in range(60):  # a listing page of about 40 KB
        emu.create_batch_export(name=f"export {n}", interval="hour")
    ahook = AsyncPostHogHook(conn_id, retry_policy=FAST_RETRY)

    def bodies_held() -> list[int]:
        return [
            len(obj._content)
            for obj in gc.get_objects()
            if type(obj) is httpx.Response and len(getattr(obj, "_content", b"")) > 1_000
        ]

    async def main() -> tuple[int, int, list[int]]:
        pages = await ahook._all(api.list_batch_exports(1))
        gc.collect()
        gc.disable()  # as if the collector did not reach the cycles during these requests
        try:
            for _ in range(20):
                await ahook.request(api.list_batch_exports(1))
            # type(), not isinstance(): some objects (lazy proxies) import modules on __class__
            responses = sum(type(obj) is httpx.Response for obj in gc.get_objects())
            return len(json.dumps(pages)), responses, bodies_held()
        finally:
            gc.enable()

    body, responses, held = arun(main())
    assert body > 30_000
    assert responses >= 20  # the cycles are there: the check below looks at them
    assert held == []  # no response left in a cycle still holds its body


def test_one_budget_per_key_per_loop(emu, set_conn, export):
    emu.add_api_key("phx_second_key", scopes=["*"])
    first = set_conn("posthog_one", host=emu.url, password=SECRET_KEY, extra={"project_id": 1})
    same = set_conn(
        "posthog_same",
        host=emu.url,
        password=SECRET_KEY,
        extra={"project_id": 1, "trigger_requests_per_minute": 60},
    )
    other = set_conn(
        "posthog_other", host=emu.url, password="phx_second_key", extra={"project_id": 1}
    )

    async def main():
        a = await AsyncPostHogHook(first).budget()
        b = await AsyncPostHogHook(same).budget()
        c = await AsyncPostHogHook(other).budget()
        return a, b, c

    a, b, c = arun(main())
    assert a is b and a is not c
    assert a.per_minute == budget_module.DEFAULT_REQUESTS_PER_MINUTE
    a_again, _, _ = arun(main())
    assert a_again is not a  # a new event loop gets new budgets


def test_budget_spreads_concurrent_requests(emu, set_conn, export):
    per_minute, burst, count = 300, budget_module.DEFAULT_BURST, 26
    interval = 60 / per_minute
    conn = set_conn(
        host=emu.url,
        password=SECRET_KEY,
        extra={"project_id": 1, "trigger_requests_per_minute": per_minute},
    )
    ahook = AsyncPostHogHook(conn, retry_policy=FAST_RETRY)

    async def main():
        await ahook.settings()  # resolve once, so the requests below queue in order
        posthog_async.shared_client()  # build the client (and its SSL context) up front
        budget = await ahook.budget()
        started = time.monotonic()
        await asyncio.gather(
            *(ahook.get_logs(export["id"], search=f"q{i:02d}") for i in range(count))
        )
        return budget, time.monotonic() - started

    budget, elapsed = arun(main())
    spaced = count - burst
    assert (budget.per_minute, budget.burst, budget.granted) == (per_minute, burst, count)
    # The first `burst` go at once; then one every `interval`, first come first served. Each
    # wait is shortened by the time the loop took to get from the budget's creation to that
    # request (well under half an interval), never lengthened.
    expected_wait = interval * spaced * (spaced + 1) / 2
    assert expected_wait - spaced * interval / 2 <= budget.waited_seconds
    assert budget.waited_seconds <= expected_wait + 1e-6
    assert elapsed >= interval * spaced - 0.05
    arrivals = [r.query["search"][0] for r in emu.requests]
    assert sorted(arrivals) == [f"q{i:02d}" for i in range(count)]
    # The queued requests reached PostHog in the order they asked for a slot. (The burst went
    # out at once over new connections, so its own order is up to the network.)
    queued = [f"q{i:02d}" for i in range(burst, count)]
    assert [name for name in arrivals if name in queued] == queued


def test_requests_in_flight_are_capped_per_loop(emu, set_conn, export, monkeypatch):
    """Requests queue at the gate, never in httpx's pool (which degrades badly when queued)."""
    monkeypatch.setattr(budget_module, "MAX_IN_FLIGHT", 3)
    conn = set_conn(
        host=emu.url,
        password=SECRET_KEY,
        extra={"project_id": 1, "trigger_requests_per_minute": 60000},  # budget out of the way
    )
    emu.add_fault("GET", r"/logs/?$", delay=0.4, process=True, times=None)
    ahook = AsyncPostHogHook(conn, retry_policy=FAST_RETRY)

    async def main():
        await ahook.settings()
        started = time.monotonic()
        await asyncio.gather(*(ahook.get_logs(export["id"]) for _ in range(9)))
        elapsed = time.monotonic() - started
        gate = budget_module.in_flight_gate()
        return elapsed, gate

    elapsed, gate = arun(main())
    assert emu.count("GET", r"/logs/?$") == 9
    # Nine 0.4 s answers, three at a time: at least three rounds (all at once would be ~0.4 s).
    assert elapsed >= 3 * 0.4 - 0.05
    assert gate._value == 3  # every slot was given back
