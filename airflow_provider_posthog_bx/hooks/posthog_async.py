"""AsyncPostHogHook: the async transport triggers use (httpx), on the same API layer as the hook.

Waiting triggers share one ``httpx.AsyncClient`` per event loop (a fresh client costs ~1 MiB for
its SSL context), one request budget per API key and a cap on requests in flight per loop, and
one reading of each connection per event loop and minute, done without blocking the loop. Waits
on one export share their polls too: one backfill listing, run listing or log read a poll round
answers all of them (:mod:`~airflow_provider_posthog_bx.hooks.sharing`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import weakref
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_posthog_bx import api
from airflow_provider_posthog_bx._compat import get_connection_async
from airflow_provider_posthog_bx.core import runs, statuses
from airflow_provider_posthog_bx.core.logs import LogWindow, LogWindowRead, parse_level
from airflow_provider_posthog_bx.core.time import UTC, parse_iso
from airflow_provider_posthog_bx.exceptions import PostHogConfigError
from airflow_provider_posthog_bx.hooks.budget import (
    MAX_IN_FLIGHT,
    RequestBudget,
    budget_for,
    in_flight_gate,
)
from airflow_provider_posthog_bx.hooks.posthog import (
    DEFAULT_TIMEOUT,
    settings_from_connection,
    user_agent,
)
from airflow_provider_posthog_bx.hooks.sharing import Key, SharedRead, leave, shared_read

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def shared_client() -> httpx.AsyncClient:
    """The event loop's one ``httpx.AsyncClient`` (created on first use)."""
    import httpx

    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            headers={"User-Agent": user_agent(), "Accept": "application/json"},
            # Equal limits: httpcore 1.0 closes idle connections whenever the pool holds more
            # than max_keepalive_connections in total (encode/httpcore#1035), which churns.
            limits=httpx.Limits(
                max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT
            ),
            timeout=httpx.Timeout(DEFAULT_TIMEOUT[1], connect=DEFAULT_TIMEOUT[0]),
        )
        _clients[loop] = client
    return client


SETTINGS_MAX_AGE = 60.0
"""Seconds a connection read in one event loop serves the waits that start after it."""


@dataclass
class _SharedSettings:
    """One connection's settings as last read in one event loop."""

    value: api.ConnectionSettings | None = None
    read_at: float = -math.inf
    reading: asyncio.Task[api.ConnectionSettings] | None = None


_settings: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, int | str | None], _SharedSettings]
] = weakref.WeakKeyDictionary()


async def connection_settings(
    posthog_conn_id: str, project_id: int | str | None
) -> api.ConnectionSettings:
    """The connection's base URL, key and project, read once for the waits of this event loop
    that start within :data:`SETTINGS_MAX_AGE` seconds of each other.

    In Airflow 3's triggerer every connection read is a round trip to the triggerer's main
    process and its metadata database, and leaves its mark in the trigger's memory: 2,000 waits
    starting together on one connection read it once, not 2,000 times. A failed read is not
    kept (every wait that asked gets the error; the next one reads again), and a changed
    connection reaches the waits that start a minute later.
    """
    loop = asyncio.get_running_loop()
    shared = _settings.setdefault(loop, {}).setdefault(
        (posthog_conn_id, project_id), _SharedSettings()
    )
    if shared.value is not None and time.monotonic() - shared.read_at <= SETTINGS_MAX_AGE:
        return shared.value
    if shared.reading is None:

        async def read() -> api.ConnectionSettings:
            conn = await get_connection_async(posthog_conn_id)
            return settings_from_connection(conn, project_id)

        def done(task: asyncio.Task[api.ConnectionSettings]) -> None:
            shared.reading = None
            if not task.cancelled() and task.exception() is None:
                shared.value, shared.read_at = task.result(), time.monotonic()

        shared.reading = loop.create_task(read())
        shared.reading.add_done_callback(done)
    return await asyncio.shield(shared.reading)


DEFAULT_RETRY_POLICY = api.RetryPolicy()


@dataclass(frozen=True)
class _Backfills:
    """One export's backfills as a shared listing showed them (see
    :meth:`AsyncPostHogHook.get_backfill_shared`)."""

    backfills: dict[str, dict[str, Any]]
    depth: int  # pages the listing needed to reach the oldest wait's backfill


BACKFILLS_PAGE = 50
"""PostHog's backfill-list page (cursor pagination, fixed size)."""


def env_proxy(url: str) -> str | None:
    """The proxy the environment gives for ``url`` (``HTTPS_PROXY``, ``ALL_PROXY``, ...,
    minus ``NO_PROXY``), as httpx reads it with ``trust_env``; None if there is none."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


class AsyncPostHogHook:
    """Async twin of :class:`~airflow_provider_posthog_bx.hooks.PostHogHook` for triggers.

    :param posthog_conn_id: the Airflow connection holding the API base URL and personal API key.
    :param project_id: the PostHog project id; defaults to the connection's ``extra.project_id``.
    :param retry_policy: how transient failures are retried; see :class:`api.RetryPolicy`.
    """

    # One hook per waiting trigger: thousands in one triggerer.
    __slots__ = (
        "_answered_alone",
        "_joined",
        "_settings",
        "_waiter",
        "posthog_conn_id",
        "project_id",
        "retry_policy",
    )

    def __init__(
        self,
        posthog_conn_id: str = "posthog_default",
        project_id: int | str | None = None,
        *,
        retry_policy: api.RetryPolicy | None = None,
    ) -> None:
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id
        self.retry_policy = retry_policy or DEFAULT_RETRY_POLICY
        self._settings: api.ConnectionSettings | None = None
        # This hook's wait in the shared reads (one hook per wait, as the triggers use it).
        self._waiter = object()
        self._joined: list[tuple[Key, Hashable]] = []
        self._answered_alone: dict[Key, float] = {}  # key -> when its own request answered

    def __repr__(self) -> str:
        return (
            f"AsyncPostHogHook(posthog_conn_id={self.posthog_conn_id!r}, "
            f"project_id={self.project_id!r})"
        )

    async def settings(self) -> api.ConnectionSettings:
        """Base URL, key and project from the Airflow connection, read once, off the loop
        (see :func:`connection_settings`)."""
        if self._settings is None:
            self._settings = await connection_settings(self.posthog_conn_id, self.project_id)
        return self._settings

    async def project(self) -> int | str:
        settings = await self.settings()
        if settings.project_id is None:
            raise PostHogConfigError(
                f"No PostHog project id: pass project_id, or set extra.project_id on "
                f"connection {self.posthog_conn_id!r}"
            )
        return settings.project_id

    async def budget(self) -> RequestBudget:
        settings = await self.settings()
        fingerprint = hashlib.sha256(settings.api_key.encode()).hexdigest()[:16]
        return budget_for((settings.base_url, fingerprint), settings.requests_per_minute)

    async def request(self, request: api.ApiRequest, *, budgeted: bool = True) -> Any:
        """Send one API request with retries; return the parsed JSON body (None if empty).

        :param budgeted: wait for the key's request budget first; cancels do not (they must
            finish within Airflow's 30 s ``on_kill`` limit, behind no queue of polls).
        """
        budget = await self.budget() if budgeted else None
        attempt = 0
        earlier = False  # whether an earlier try may have been processed
        while True:
            attempt += 1
            if budget is not None:
                await budget.acquire()
            async with in_flight_gate():
                outcome = await self._send(request)
            decision = api.decide(request, outcome, attempt, self.retry_policy)
            if isinstance(decision, api.Done):
                return decision.data
            if isinstance(decision, api.Fail):
                raise api.noting_earlier(decision.error, earlier)
            earlier = earlier or api.may_have_applied(outcome)
            log.warning("%s", decision.describe(request, attempt, self.retry_policy))
            await asyncio.sleep(decision.delay)

    async def _send(self, request: api.ApiRequest) -> api.Response | api.TransportFailure:
        import httpx

        settings = await self.settings()
        try:
            # Streamed, so that the body is ours alone: httpx's Response sits in a reference
            # cycle (with its stream and httpcore's pool request), and a body it held would
            # live until the cycle collector's next full pass, which in a triggerer's large
            # heap is rare. Thousands of waits' listings then pile up (MiBs a minute).
            async with shared_client().stream(
                request.method,
                settings.base_url + request.path,
                params=cast(Any, request.params) or None,
                json=request.json,
                headers={"Authorization": f"Bearer {settings.api_key}"},
            ) as response:
                body = b"".join([chunk async for chunk in response.aiter_bytes()])
        except (httpx.ConnectError, httpx.ProxyError) as exc:
            # Nothing was sent: the connection (to PostHog, or to the proxy and through it)
            # or its TLS handshake failed.
            tls = api.tls_failure(exc, settings.base_url, connecting=True)
            if tls is not None:
                return tls
            proxy = env_proxy(settings.base_url)
            if proxy is not None or isinstance(exc, httpx.ProxyError):
                return api.proxy_failure(exc, proxy, settings.base_url)
            return api.TransportFailure(f"could not connect to {settings.base_url}", sent=False)
        except (httpx.ConnectTimeout, httpx.PoolTimeout):
            return api.TransportFailure(f"could not connect to {settings.base_url}", sent=False)
        except httpx.TimeoutException:
            return api.TransportFailure("timed out waiting for PostHog's answer", sent=True)
        except httpx.TransportError as exc:
            tls = api.tls_failure(exc, settings.base_url)
            if tls is not None:
                return tls
            return api.TransportFailure(
                f"the connection failed before PostHog answered ({type(exc).__name__})", sent=True
            )
        return api.Response(response.status_code, response.headers, body)

    async def get_backfill(self, batch_export_id: str, backfill_id: str) -> dict[str, Any]:
        request = api.get_backfill(await self.project(), batch_export_id, backfill_id)
        return cast("dict[str, Any]", await self.request(request))

    async def _shared(self, kind: str, batch_export_id: str, waiter: Hashable) -> Key:
        """Join the shared read of ``kind`` on the export (left by :meth:`leave_shared`)."""
        settings = await self.settings()
        key = (kind, settings.base_url, str(await self.project()), batch_export_id)
        if (key, waiter) not in self._joined:
            self._joined.append((key, waiter))
        return key

    def leave_shared(self) -> None:
        """The waits of this hook have ended: leave the shared reads they joined at once,
        rather than counting for three more rounds. The triggers call it when they end."""
        for key, waiter in self._joined:
            leave(key, waiter)
        self._joined.clear()

    async def get_backfill_shared(
        self, batch_export_id: str, backfill_id: str, *, max_age: float
    ) -> dict[str, Any]:
        """The backfill's :func:`~airflow_provider_posthog_bx.core.statuses.summary` (status,
        progress, range, times) once it is final, its ``status`` and ``progress`` alone while
        it is not, from one listing of the export's backfills shared by every wait on that
        export in this event loop.

        A wait on an export nobody else waits on sends its own ``GET``. With two or more, the
        first poll after the listing is ``max_age`` seconds old lists the export's backfills
        (newest first, as many pages of 50 as the waits need) and every wait takes its
        backfill from it: the waits on one export cost one listing a round instead of one
        request each, so many waits under one request budget notice completion within about
        two poll intervals. A backfill the listing does not show (not visible yet, or older
        than the pages read) is fetched on its own, with its 404. The waits are told apart by
        backfill id; see :mod:`~airflow_provider_posthog_bx.hooks.sharing` for the rules.
        """
        project = await self.project()
        key = await self._shared("backfills", batch_export_id, backfill_id)
        shared: SharedRead[None, _Backfills] = shared_read(key)

        async def read(asked: Mapping[Hashable, None], last: _Backfills | None) -> _Backfills:
            return await self._list_backfills(project, batch_export_id, set(asked), last)

        def answer(listed: _Backfills) -> dict[str, Any] | None:
            found = listed.backfills.get(backfill_id)
            return None if found is None else dict(found)  # None: not visible yet, or deeper

        async def alone() -> dict[str, Any]:
            return statuses.summary(await self.get_backfill(batch_export_id, backfill_id))

        backfill = await shared.poll(
            backfill_id,
            None,
            max_age=max_age,
            read=read,
            answer=answer,
            alone=alone,
        )
        if statuses.is_final(statuses.status_of(backfill)):
            leave(key, backfill_id)  # its wait ends with this answer
            self._joined.remove((key, backfill_id))
        return backfill

    async def _list_backfills(
        self,
        project: int | str,
        batch_export_id: str,
        wanted: set[Hashable],
        last: _Backfills | None,
    ) -> _Backfills:
        # Newest first: as deep as the oldest wait's backfill was last time, one page more
        # (newer backfills push it down), at least a page per 50 waits. A wait still not
        # reached polls its own backfill this round, and the next listing goes one deeper.
        depth = last.depth if last is not None else 0
        max_pages = max(depth, math.ceil(len(wanted) / BACKFILLS_PAGE)) + 1
        request = api.list_backfills(project, batch_export_id)
        listed: dict[str, dict[str, Any]] = {}
        # The listing lives as long as its waits, so it keeps only what they read: the
        # backfills they wait on, and of one still in flight only its status and progress,
        # held once for all the backfills in the same state (thousands are, while Starting).
        in_flight: dict[tuple[Any, ...], dict[str, Any]] = {}
        for number in range(1, max_pages + 1):
            page = await self.request(request)
            for backfill in api.page_results(page, request):
                backfill_id = str(backfill.get("id"))
                if backfill_id not in wanted:
                    continue
                status = statuses.status_of(backfill)
                if statuses.is_final(status):
                    listed[backfill_id] = statuses.summary(backfill)
                    continue
                progress = backfill.get("progress")
                entry = {"status": backfill.get("status"), "progress": progress}
                state = (status, *(progress.items() if isinstance(progress, dict) else ()))
                try:
                    listed[backfill_id] = in_flight.setdefault(state, entry)
                except TypeError:  # a progress PostHog never sends (not hashable): its own
                    listed[backfill_id] = entry
            depth = number
            params = api.next_page_params(page)
            if params is None or wanted <= listed.keys():
                break
            request = api.with_params(request, params)
        return _Backfills(listed, depth)

    async def cancel_backfill(self, batch_export_id: str, backfill_id: str) -> dict[str, Any]:
        """Cancel a backfill, ahead of the request budget's queue."""
        request = api.cancel_backfill(await self.project(), batch_export_id, backfill_id)
        return cast("dict[str, Any]", await self.request(request, budgeted=False))

    async def list_runs(self, batch_export_id: str, **filters: Any) -> list[dict[str, Any]]:
        """Runs of an export (all cursor pages); filters as for ``PostHogHook.list_runs``."""
        params = api.run_filters(filters)
        return await self._all(api.list_runs(await self.project(), batch_export_id, params))

    async def list_runs_page(
        self, batch_export_id: str, **filters: Any
    ) -> tuple[list[dict[str, Any]], bool]:
        """The first page of an export's runs (PostHog's 100 newest by ``created_at`` by
        default) and whether more pages exist: one request whatever the number of runs."""
        request = api.list_runs(await self.project(), batch_export_id, api.run_filters(filters))
        page = await self.request(request)
        return api.page_results(page, request), api.next_page_params(page) is not None

    async def list_runs_shared(
        self, batch_export_id: str, start: datetime, end: datetime, *, max_age: float
    ) -> list[dict[str, Any]]:
        """The runs :meth:`list_runs` returns with ``runs.interval_filters(start, end)`` (the
        runs inside ``[start, end]``), from one run listing shared by every run wait on the
        export in this event loop.

        A wait alone on its export lists its own interval. With two or more, one listing a
        poll round covers the union of their intervals (earliest start to latest end, by
        data interval, every cursor page of 100) and each wait takes the runs inside its own
        interval, in PostHog's order. The listing reads at most a page per wait; a wait whose
        interval lies below the pages read lists its own. The waits are told apart by hook
        (one hook per wait); see :mod:`~airflow_provider_posthog_bx.hooks.sharing`.
        """
        project = await self.project()
        key = await self._shared("runs", batch_export_id, self._waiter)
        shared: SharedRead[runs.Interval, runs.IntervalListing] = shared_read(key)

        async def read(
            asked: Mapping[Hashable, runs.Interval], last: runs.IntervalListing | None
        ) -> runs.IntervalListing:
            return await self._list_intervals(project, batch_export_id, list(asked.values()))

        return await shared.poll(
            self._waiter,
            (start, end),
            max_age=max_age,
            read=read,
            answer=lambda listing: listing.within(start, end),
            alone=lambda: self.list_runs(batch_export_id, **runs.interval_filters(start, end)),
        )

    async def _list_intervals(
        self, project: int | str, batch_export_id: str, intervals: Sequence[runs.Interval]
    ) -> runs.IntervalListing:
        low, high = min(start for start, _ in intervals), max(end for _, end in intervals)
        filters = api.run_filters(runs.interval_filters(low, high))
        request = api.list_runs(project, batch_export_id, filters)
        listed: list[dict[str, Any]] = []
        pages = 0
        while True:
            page = await self.request(request)
            pages += 1
            listed.extend(api.page_results(page, request))
            params = api.next_page_params(page)
            if params is None:
                return runs.IntervalListing(low, high, listed)
            partial = runs.IntervalListing(low, high, listed, complete=False)
            # Never more pages than the waits would send requests alone.
            if pages >= len(intervals) or all(partial.covers(*each) for each in intervals):
                return partial
            request = api.with_params(request, params)

    async def get_logs(
        self,
        batch_export_id: str,
        after: api.TimeArg = None,
        before: api.TimeArg = None,
        level: str | None = None,
        search: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Log entries of an export, newest first: one request (see ``PostHogHook.get_logs``)."""
        request = api.get_logs(
            await self.project(),
            batch_export_id,
            after=after,
            before=before,
            level=parse_level(level),
            search=search,
            limit=limit,
        )
        return api.page_results(await self.request(request), request)

    async def get_logs_shared(
        self,
        batch_export_id: str,
        after: api.TimeArg,
        before: api.TimeArg = None,
        limit: int = 50,
        *,
        max_age: float,
    ) -> list[dict[str, Any]]:
        """The entries :meth:`get_logs` returns for ``after``, ``before`` and ``limit`` (any
        level, no search), from one read of the export's logs shared by every log wait on the
        export in this event loop.

        A wait alone on its export sends its own request. With two or more, one read a poll
        round fetches every entry newer than the earliest wait's ``after`` (pages of 500
        back with ``before``, at most 5,000 entries) and answers each wait's query from it
        exactly as PostHog would have (newest first, entries strictly after ``after`` and
        before ``before``, the first ``limit``), when the read covers that query; otherwise
        the wait sends its own, as it does when the read is older than its own last answer
        (it never steps back in time: an entry it saw must not vanish from its view). The
        waits are told apart by hook (one hook per wait), each with its own cursor; see
        :mod:`~airflow_provider_posthog_bx.hooks.sharing`.
        """
        project = await self.project()
        request = api.get_logs(project, batch_export_id, after=after, before=before, limit=limit)
        start, end = _bound(request, "after"), _bound(request, "before")
        if start is None:  # all of the export's logs: no read holds that
            return api.page_results(await self.request(request), request)
        key = await self._shared("logs", batch_export_id, self._waiter)
        shared: SharedRead[datetime, LogWindow] = shared_read(key)

        async def read(asked: Mapping[Hashable, datetime], last: LogWindow | None) -> LogWindow:
            window = LogWindowRead(min(asked.values()))
            while (query := window.next_query()) is not None:
                window.feed(
                    await self.get_logs(
                        batch_export_id, after=query.after, before=query.before, limit=query.limit
                    )
                )
            return window.window()

        async def alone() -> list[dict[str, Any]]:
            page = api.page_results(await self.request(request), request)
            self._answered_alone[key] = time.monotonic()
            return page

        return await shared.poll(
            self._waiter,
            start,
            max_age=max_age,
            read=read,
            answer=lambda window: window.answer(start, end, limit),
            alone=alone,
            not_before=self._answered_alone.get(key, -math.inf),
        )

    async def _all(self, request: api.ApiRequest) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = await self.request(request)
            found.extend(api.page_results(page, request))
            params = api.next_page_params(page)
            if params is None:
                return found
            request = api.with_params(request, params)


def _bound(request: api.ApiRequest, name: str) -> datetime | None:
    """A bound of a logs request (as :func:`api.get_logs` checked and wrote it), as an instant."""
    value = request.params.get(name)
    return parse_iso(value).astimezone(UTC) if isinstance(value, str) else None
