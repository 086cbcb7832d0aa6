"""AsyncPostHogHook: the async transport triggers use (httpx), on the same API layer as the hook.

Waiting triggers share one ``httpx.AsyncClient`` per event loop (a fresh client costs ~1 MiB for
its SSL context), one request budget per API key and a cap on requests in flight per loop, and
one reading of each connection per event loop and minute, done without blocking the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_posthog_bx import api
from airflow_provider_posthog_bx._compat import get_connection_async
from airflow_provider_posthog_bx.core import statuses
from airflow_provider_posthog_bx.core.logs import parse_level
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


@dataclass
class _SharedListing:
    """One export's backfills as its last listing showed them, for the waits of one event
    loop (see :meth:`AsyncPostHogHook.get_backfill_shared`)."""

    waiters: dict[str, float] = field(default_factory=dict)  # backfill id -> last poll
    backfills: dict[str, dict[str, Any]] = field(default_factory=dict)
    listed_for: frozenset[str] = frozenset()  # the waits the last listing looked for
    fetched_at: float = -math.inf
    round_seconds: float = 0.0  # how long the last listing took (budget queue included)
    depth: int = 0  # pages the last listing needed to reach the oldest wait's backfill
    fetching: asyncio.Task[None] | None = None
    pruned_at: float = -math.inf

    def prune(self, now: float, max_age: float) -> None:
        """Forget the waits that have ended, at most once a round (a wait polls every
        ``max_age`` plus however long a listing takes: one that has not polled for a few of
        those has ended: final, timed out or cancelled)."""
        if now - self.pruned_at < max_age:
            return
        self.pruned_at = now
        gone = 3 * (max_age + self.round_seconds)
        for waiter, seen in list(self.waiters.items()):
            if now - seen > gone:
                del self.waiters[waiter]


_listings: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str, str], _SharedListing]
] = weakref.WeakKeyDictionary()

DEFAULT_RETRY_POLICY = api.RetryPolicy()

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
            response = await shared_client().request(
                request.method,
                settings.base_url + request.path,
                params=cast(Any, request.params) or None,
                json=request.json,
                headers={"Authorization": f"Bearer {settings.api_key}"},
            )
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
        return api.Response(response.status_code, response.headers, response.content)

    async def get_backfill(self, batch_export_id: str, backfill_id: str) -> dict[str, Any]:
        request = api.get_backfill(await self.project(), batch_export_id, backfill_id)
        return cast("dict[str, Any]", await self.request(request))

    async def get_backfill_shared(
        self, batch_export_id: str, backfill_id: str, *, max_age: float
    ) -> dict[str, Any]:
        """The backfill's :func:`~airflow_provider_posthog_bx.core.statuses.summary` (status,
        progress, range, times), from one listing of the export's backfills shared by every
        wait on that export in this event loop.

        A wait on an export nobody else waits on sends its own ``GET``. With two or more, the
        first poll after the listing is ``max_age`` seconds old lists the export's backfills
        (newest first, as many pages of 50 as the waits need) and every wait takes its
        backfill from it: the waits on one export cost one listing a round instead of one
        request each, so many waits under one request budget notice completion within about
        two poll intervals. A backfill the listing does not show (not visible yet, or older
        than the pages read) is fetched on its own, with its 404.
        """
        project = await self.project()
        settings = await self.settings()
        loop = asyncio.get_running_loop()
        key = (settings.base_url, str(project), batch_export_id)
        shared = _listings.setdefault(loop, {}).setdefault(key, _SharedListing())
        now = time.monotonic()
        shared.waiters[backfill_id] = now
        shared.prune(now, max_age)
        if len(shared.waiters) < 2:
            return statuses.summary(await self.get_backfill(batch_export_id, backfill_id))
        # A listing older than a poll interval, or one made before this wait joined, is
        # listed again (once for every wait that finds it so).
        for _ in range(2):
            fresh = time.monotonic() - shared.fetched_at <= max_age
            if fresh and backfill_id in shared.listed_for:
                break
            if shared.fetching is None:
                shared.fetching = loop.create_task(self._list_shared(shared, project, key[2]))
            await asyncio.shield(shared.fetching)
        found = shared.backfills.get(backfill_id)
        if found is None:  # not listed: not visible yet, or older than the pages read
            return statuses.summary(await self.get_backfill(batch_export_id, backfill_id))
        if statuses.is_final(statuses.status_of(found)):
            shared.waiters.pop(backfill_id, None)  # its wait ends with this answer
        return dict(found)

    async def _list_shared(
        self, shared: _SharedListing, project: int | str, batch_export_id: str
    ) -> None:
        began = time.monotonic()
        try:
            wanted = frozenset(shared.waiters)
            # Newest first: as deep as the oldest wait's backfill was last time, one page more
            # (newer backfills push it down), at least a page per 50 waits. A wait still not
            # reached polls its own backfill this round, and the next listing goes one deeper.
            max_pages = max(shared.depth, math.ceil(len(wanted) / BACKFILLS_PAGE)) + 1
            request = api.list_backfills(project, batch_export_id)
            listed: dict[str, dict[str, Any]] = {}
            depth = 0
            for number in range(1, max_pages + 1):
                page = await self.request(request)
                for backfill in api.page_results(page, request):
                    # Only what the waits read: the listing lives as long as its waits.
                    listed[str(backfill.get("id"))] = statuses.summary(backfill)
                depth = number
                params = api.next_page_params(page)
                if params is None or wanted <= listed.keys():
                    break
                request = api.with_params(request, params)
            shared.depth = depth
            shared.backfills, shared.listed_for = listed, wanted
            shared.fetched_at = time.monotonic()
            shared.round_seconds = shared.fetched_at - began
        finally:
            shared.fetching = None

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

    async def _all(self, request: api.ApiRequest) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = await self.request(request)
            found.extend(api.page_results(page, request))
            params = api.next_page_params(page)
            if params is None:
                return found
            request = api.with_params(request, params)
