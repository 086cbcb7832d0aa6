"""AsyncPostHogHook: the async transport triggers use (httpx), on the same API layer as the hook.

Waiting triggers share one ``httpx.AsyncClient`` per event loop (a fresh client costs ~1 MiB for
its SSL context), one request budget per API key and a cap on requests in flight per loop, and
resolve their connection without blocking the triggerer's event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_posthog_bx import api
from airflow_provider_posthog_bx._compat import get_connection_async
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
        self.retry_policy = retry_policy or api.RetryPolicy()
        self._settings: api.ConnectionSettings | None = None

    def __repr__(self) -> str:
        return (
            f"AsyncPostHogHook(posthog_conn_id={self.posthog_conn_id!r}, "
            f"project_id={self.project_id!r})"
        )

    async def settings(self) -> api.ConnectionSettings:
        """Base URL, key and project from the Airflow connection, read once, off the loop."""
        if self._settings is None:
            conn = await get_connection_async(self.posthog_conn_id)
            self._settings = settings_from_connection(conn, self.project_id)
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
