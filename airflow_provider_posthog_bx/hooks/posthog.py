"""PostHogHook: the Airflow connection, auth, retries and every batch-exports API call (sync)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_posthog_bx import __version__, api
from airflow_provider_posthog_bx._compat import BaseHook
from airflow_provider_posthog_bx.core.bounds import format_bounds, parse_bounds
from airflow_provider_posthog_bx.core.logs import parse_level
from airflow_provider_posthog_bx.exceptions import (
    PostHogAPIError,
    PostHogConfigError,
)

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (10.0, 30.0)


def user_agent() -> str:
    """``airflow-provider-posthog-bx/<version> apache-airflow/<version>``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        airflow_version = version("apache-airflow")
    except PackageNotFoundError:  # pragma: no cover - Airflow is a dependency
        airflow_version = "unknown"
    return f"airflow-provider-posthog-bx/{__version__} apache-airflow/{airflow_version}"


def settings_from_connection(conn: Any, project_id: int | str | None) -> api.ConnectionSettings:
    """Read an Airflow connection of type ``posthog`` into :class:`api.ConnectionSettings`.

    :param conn: the Airflow ``Connection``: host = API base URL or host name, password = the
        personal API key, extra ``project_id`` = the default project, extra
        ``allow_insecure_http`` = true to allow ``http://`` to a host that is not loopback.
    :param project_id: overrides the connection's ``project_id`` when given.
    """
    key = (conn.password or "").strip()
    if not key:
        raise PostHogConfigError(
            f"Connection {conn.conn_id!r} has no API key; put a PostHog personal API key "
            "(phx_...) with the batch_export:read and batch_export:write scopes in its password"
        )
    extra = conn.extra_dejson if isinstance(conn.extra_dejson, Mapping) else {}
    budget = extra.get("trigger_requests_per_minute")
    try:
        rate = float(budget) if budget not in (None, "") else None
    except (TypeError, ValueError):
        raise PostHogConfigError(
            f"Connection {conn.conn_id!r} extra trigger_requests_per_minute must be a number "
            f"(got {budget!r})"
        ) from None
    chosen = api.parse_project_id(project_id, "project_id")
    if chosen is None:
        # Older connection forms store custom fields as extra__<conn type>__<field>.
        default = extra.get("project_id") or extra.get("extra__posthog__project_id")
        chosen = api.parse_project_id(default, f"{conn.conn_id} extra.project_id")
    insecure = extra.get("allow_insecure_http", False)
    if isinstance(insecure, str) and insecure.strip().lower() in ("true", "false", ""):
        insecure = insecure.strip().lower() == "true"
    if not isinstance(insecure, bool):
        raise PostHogConfigError(
            f"Connection {conn.conn_id!r} extra allow_insecure_http must be true or false "
            f"(got {insecure!r})"
        )
    return api.ConnectionSettings(
        base_url=api.base_url_from(conn.host, conn.port, conn.schema, allow_insecure_http=insecure),
        api_key=key,
        project_id=chosen,
        requests_per_minute=rate,
    )


class PostHogHook(BaseHook):
    """Calls PostHog's batch-exports API with the key of an Airflow ``posthog`` connection.

    Every method returns parsed JSON (or an id) and raises a typed
    :mod:`~airflow_provider_posthog_bx.exceptions` error carrying PostHog's ``detail``.

    :param posthog_conn_id: the Airflow connection holding the API base URL and personal API key.
    :param project_id: the PostHog project (environment) id; defaults to the connection's
        ``extra.project_id``. Each method's ``project_id`` overrides it.
    :param timeout: ``(connect, read)`` timeout of one HTTP request, in seconds.
    :param retry_policy: how transient failures are retried; see :class:`api.RetryPolicy`.
    """

    conn_name_attr = "posthog_conn_id"
    default_conn_name = "posthog_default"
    conn_type = "posthog"
    hook_name = "PostHog"

    def __init__(
        self,
        posthog_conn_id: str = default_conn_name,
        project_id: int | str | None = None,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry_policy: api.RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id
        self.timeout = timeout
        self.retry_policy = retry_policy or api.RetryPolicy()

    def __repr__(self) -> str:
        return (
            f"PostHogHook(posthog_conn_id={self.posthog_conn_id!r}, project_id={self.project_id!r})"
        )

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form: relabel host/password, hide what PostHog does not use.

        The same words Airflow 3.2+ reads from ``get_provider_info`` (one source for both).
        """
        behaviour = _connection_type()["ui-field-behaviour"]
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Connection form: the default project id (Airflow 2 / 3.0-3.1 UIs)."""
        try:
            from flask_babel import lazy_gettext
            from wtforms import StringField
        except ImportError:  # Airflow 3.2+ builds the form from get_provider_info instead
            return {}
        try:
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget

            widget: Any = BS3TextFieldWidget()
        except ImportError:  # Airflow 3 has no Flask AppBuilder
            widget = None
        fields = _connection_type()["conn-fields"]
        return {
            name: StringField(
                lazy_gettext(field["label"]), widget=widget, description=field["description"]
            )
            for name, field in fields.items()
        }

    # ----------------------------------------------------------------------------------------
    # Connection and transport

    @cached_property
    def settings(self) -> api.ConnectionSettings:
        """Base URL, key and default project, read from the Airflow connection once."""
        conn = self.get_connection(self.posthog_conn_id)
        return settings_from_connection(conn, self.project_id)

    @cached_property
    def session(self) -> requests.Session:
        import requests

        session = requests.Session()
        session.headers["User-Agent"] = user_agent()
        session.headers["Accept"] = "application/json"
        return session

    def get_conn(self) -> requests.Session:
        """The keep-alive ``requests.Session`` used for every call."""
        return self.session

    def project(self, project_id: int | str | None = None) -> int | str:
        """The project id a call goes to: the argument, else the hook's, else the connection's."""
        chosen = api.parse_project_id(project_id, "project_id")
        if chosen is None:
            chosen = self.settings.project_id
        if chosen is None:
            raise PostHogConfigError(
                f"No PostHog project id: pass project_id, or set extra.project_id on "
                f"connection {self.posthog_conn_id!r}"
            )
        return chosen

    def request(self, request: api.ApiRequest, *, policy: api.RetryPolicy | None = None) -> Any:
        """Send one API request with retries; return the parsed JSON body (None if empty).

        :param policy: this request's retry policy instead of the hook's.
        """
        policy = policy or self.retry_policy
        attempt = 0
        earlier = False  # whether an earlier try may have been processed
        while True:
            attempt += 1
            outcome = self._send(request)
            decision = api.decide(request, outcome, attempt, policy)
            if isinstance(decision, api.Done):
                return decision.data
            if isinstance(decision, api.Fail):
                raise api.noting_earlier(decision.error, earlier)
            earlier = earlier or api.may_have_applied(outcome)
            log.warning("%s", decision.describe(request, attempt, policy))
            time.sleep(decision.delay)

    def _send(self, request: api.ApiRequest) -> api.Response | api.TransportFailure:
        import requests

        settings = self.settings
        try:
            response = self.session.request(
                request.method,
                settings.base_url + request.path,
                params=cast(Any, request.params) or None,
                json=request.json,
                headers={"Authorization": f"Bearer {settings.api_key}"},
                timeout=self.timeout,
                # A redirect would re-send the key elsewhere or turn a POST into a GET:
                # api.decide reports it instead.
                allow_redirects=False,
            )
        except requests.exceptions.ConnectTimeout:
            return api.TransportFailure(f"timed out connecting to {settings.base_url}", sent=False)
        except requests.exceptions.ReadTimeout:
            return api.TransportFailure("timed out waiting for PostHog's answer", sent=True)
        except requests.exceptions.ProxyError as exc:
            proxy = self._proxy_for(settings.base_url + request.path)
            return api.proxy_failure(exc, proxy, settings.base_url)
        except requests.exceptions.ConnectionError as exc:
            return _connection_failure(exc, settings.base_url)
        except requests.exceptions.RequestException as exc:
            return api.TransportFailure(f"{type(exc).__name__}", sent=True)
        return api.Response(response.status_code, response.headers, response.content)

    def _proxy_for(self, url: str) -> str | None:
        """The proxy ``requests`` sends ``url`` through (from the environment), if any."""
        import requests

        found = self.session.merge_environment_settings(url, {}, None, None, None)
        return requests.utils.select_proxy(url, found["proxies"])

    def pages(self, request: api.ApiRequest) -> Iterator[list[dict[str, Any]]]:
        """Yield the ``results`` of every page of a listing, following ``next`` links."""
        while True:
            page = self.request(request)
            yield api.page_results(page, request)
            params = api.next_page_params(page)
            if params is None:
                return
            request = api.with_params(request, params)

    def _all(self, request: api.ApiRequest) -> list[dict[str, Any]]:
        return [item for page in self.pages(request) for item in page]

    # ----------------------------------------------------------------------------------------
    # Batch exports

    def list_batch_exports(self, project_id: int | str | None = None) -> list[dict[str, Any]]:
        """Every batch export of the project (all pages)."""
        return self._all(api.list_batch_exports(self.project(project_id)))

    def get_batch_export(
        self, batch_export_id: str, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """One batch export (name, interval, destination, paused, latest_runs, ...)."""
        return cast(
            "dict[str, Any]",
            self.request(api.get_batch_export(self.project(project_id), batch_export_id)),
        )

    def create_batch_export(
        self, body: Mapping[str, Any], project_id: int | str | None = None
    ) -> dict[str, Any]:
        """Create a batch export from PostHog's create body (name, destination, interval, ...)."""
        return cast(
            "dict[str, Any]", self.request(api.create_batch_export(self.project(project_id), body))
        )

    def update_batch_export(
        self, batch_export_id: str, body: Mapping[str, Any], project_id: int | str | None = None
    ) -> dict[str, Any]:
        """PATCH a batch export; ``destination.config`` is merged into the stored config."""
        request = api.update_batch_export(self.project(project_id), batch_export_id, body)
        return cast("dict[str, Any]", self.request(request))

    def delete_batch_export(
        self, batch_export_id: str, project_id: int | str | None = None
    ) -> None:
        """Delete a batch export (PostHog also cancels its running backfills and runs)."""
        self.request(api.delete_batch_export(self.project(project_id), batch_export_id))

    def pause_batch_export(
        self, batch_export_id: str, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """Pause the export's schedule; returns ``{"paused": true}`` (a no-op if paused)."""
        request = api.pause_batch_export(self.project(project_id), batch_export_id)
        return cast("dict[str, Any]", self.request(request))

    def unpause_batch_export(
        self, batch_export_id: str, backfill: bool = False, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """Unpause the export's schedule; returns ``{"paused": false}``.

        :param backfill: also backfill the window the export was paused for (PostHog's option;
            the backfill's id is not returned, find it with :meth:`list_backfills`).
        """
        request = api.unpause_batch_export(self.project(project_id), batch_export_id, backfill)
        return cast("dict[str, Any]", self.request(request))

    # ----------------------------------------------------------------------------------------
    # Backfills

    def create_backfill(
        self,
        batch_export_id: str,
        start_at: datetime | date | str,
        end_at: datetime | date | str,
        project_id: int | str | None = None,
    ) -> str:
        """Start a backfill and return its id.

        When a bound is a datetime or a date, both are checked and formatted for the export's
        interval by :func:`~airflow_provider_posthog_bx.core.bounds.format_bounds` (dates for
        daily and weekly exports, on the export's ``offset_day`` for weekly ones), which costs
        one GET of the export first. Two strings are sent as given: they must already be in
        the form PostHog wants (as the backfill operator sends them), and PostHog checks them.
        This request is never re-sent once it may have reached PostHog: an ambiguous failure
        raises :class:`~airflow_provider_posthog_bx.exceptions.PostHogAmbiguousRequestError`.
        Falls back to the deprecated ``POST .../backfill/`` on older self-hosted PostHog.

        :param start_at: the first instant to export: an aware datetime, a date or an ISO
            string (a naive datetime is refused before any request).
        :param end_at: the end of the range (exclusive), in the same forms; not in the future.
        """
        project = self.project(project_id)
        if not (isinstance(start_at, str) and isinstance(end_at, str)):
            parse_bounds(start_at, end_at)  # naive, reversed or future: refused before the GET
            export = self.get_batch_export(batch_export_id, project)
            bounds = format_bounds(export, start_at, end_at)
            start_at, end_at = bounds.start_at, bounds.end_at
        request = api.create_backfill(project, batch_export_id, start_at, end_at)
        try:
            body = self.request(request)
        except PostHogAPIError as error:
            if not api.is_missing_route(error):
                raise
            log.info(
                "PostHog has no POST .../backfills/ route (%s); using the legacy .../backfill/",
                error.status,
            )
            request = api.create_backfill_legacy(project, batch_export_id, start_at, end_at)
            body = self.request(request)
        return api.backfill_id_from(body, request)

    def get_backfill(
        self, batch_export_id: str, backfill_id: str, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """One backfill: status, progress, start_at, end_at, finished_at, ..."""
        request = api.get_backfill(self.project(project_id), batch_export_id, backfill_id)
        return cast("dict[str, Any]", self.request(request))

    def list_backfills(
        self,
        batch_export_id: str,
        project_id: int | str | None = None,
        max_pages: int | None = None,
    ) -> list[dict[str, Any]]:
        """Backfills of an export, newest first.

        :param max_pages: stop after this many pages of 50 (None = all).
        """
        request = api.list_backfills(self.project(project_id), batch_export_id)
        found: list[dict[str, Any]] = []
        for number, page in enumerate(self.pages(request), start=1):
            found.extend(page)
            if max_pages is not None and number >= max_pages:
                break
        return found

    def cancel_backfill(
        self, batch_export_id: str, backfill_id: str, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """Cancel a Starting/Running backfill and its in-flight runs (retried briefly: a kill
        must finish within Airflow's 30 s ``on_kill`` limit)."""
        request = api.cancel_backfill(self.project(project_id), batch_export_id, backfill_id)
        return cast("dict[str, Any]", self.request(request, policy=api.CANCEL_RETRY_POLICY))

    # ----------------------------------------------------------------------------------------
    # Runs and logs

    def list_runs(
        self, batch_export_id: str, project_id: int | str | None = None, **filters: Any
    ) -> list[dict[str, Any]]:
        """Runs of an export (all cursor pages).

        :param filters: PostHog's run filters: ``status`` (a status or a list), ``ordering``,
            ``after``/``before`` (on created_at; PostHog defaults ``after`` to ``-7d``),
            ``start``/``end`` (with ``ordering=data_interval_start``). Time values are aware
            datetimes, dates (00:00 UTC), ISO strings with an offset or relative strings such
            as ``-30d``; a naive one raises ``PostHogInputError`` naming the filter.
        """
        return self._all(
            api.list_runs(self.project(project_id), batch_export_id, api.run_filters(filters))
        )

    def get_run(
        self,
        batch_export_id: str,
        run_id: str,
        project_id: int | str | None = None,
        after: api.TimeArg = None,
    ) -> dict[str, Any]:
        """One run. PostHog hides runs created over 7 days ago unless ``after`` reaches back.

        :param after: an aware datetime, a date (00:00 UTC), an ISO string with an offset or a
            relative string such as ``-30d``.
        """
        params = api.run_filters({"after": after}) or None
        request = api.get_run(self.project(project_id), batch_export_id, run_id, params)
        return cast("dict[str, Any]", self.request(request))

    def retry_run(
        self, batch_export_id: str, run_id: str, project_id: int | str | None = None
    ) -> str:
        """Re-run one run's interval; returns PostHog's id for it (a workflow id)."""
        request = api.retry_run(self.project(project_id), batch_export_id, run_id)
        return api.backfill_id_from(self.request(request), request)

    def cancel_run(
        self, batch_export_id: str, run_id: str, project_id: int | str | None = None
    ) -> dict[str, Any]:
        """Cancel a Starting/Running run."""
        request = api.cancel_run(self.project(project_id), batch_export_id, run_id)
        return cast("dict[str, Any]", self.request(request))

    def get_logs(
        self,
        batch_export_id: str,
        after: api.TimeArg = None,
        before: api.TimeArg = None,
        level: str | None = None,
        search: str | None = None,
        limit: int = 50,
        project_id: int | str | None = None,
    ) -> list[dict[str, Any]]:
        """Log entries of an export, newest first: one request, at most ``limit`` (1..500).

        :param after: only entries strictly newer than this instant: an aware datetime, a date
            (00:00 UTC) or an ISO string with an offset; a naive one raises
            ``PostHogInputError``.
        :param before: only entries strictly older than this instant (same forms).
        :param level: one level name (``INFO``, ``WARNING`` or ``WARN``, ``ERROR``, ...),
            case-insensitive.
        :param search: case-insensitive substring of the message.
        """
        request = api.get_logs(
            self.project(project_id),
            batch_export_id,
            after=after,
            before=before,
            level=parse_level(level),
            search=search,
            limit=limit,
        )
        return api.page_results(self.request(request), request)

    # ----------------------------------------------------------------------------------------
    # Airflow UI

    def test_connection(self) -> tuple[bool, str]:
        """One read-only request; returns ``(ok, message)`` with what to fix when not ok.

        The message speaks the connection form's words: the UI tests a connection under a
        temporary id, so the id is never named.
        """
        try:
            project = self.project()
            self.request(api.list_batch_exports(project, limit=1))
        except PostHogAPIError as error:
            return False, _explain(error, self)
        except PostHogConfigError as error:
            conn_id = self.posthog_conn_id
            message = str(error)
            for named, plain in (
                (f"{conn_id} extra.project_id", "Project ID"),
                (f"extra.project_id on connection {conn_id!r}", "the connection's Project ID"),
                (f"Connection {conn_id!r} extra", "The connection's extra"),
                (f"Connection {conn_id!r}", "The connection"),
                (f"connection {conn_id!r}", "the connection"),
            ):
                message = message.replace(named, plain)
            return False, message.rstrip(".") + "."
        except Exception as error:  # the UI shows the message; e.g. an unknown connection id
            return False, f"{type(error).__name__}: {error}"
        return True, f"Connected to {self.settings.base_url}, project {project}."


def _connection_type() -> dict[str, Any]:
    """The ``posthog`` entry of this provider's connection types."""
    from airflow_provider_posthog_bx.get_provider_info import get_provider_info

    (entry,) = get_provider_info()["connection-types"]
    return cast("dict[str, Any]", entry)


def _connection_failure(exc: Exception, base_url: str) -> api.TransportFailure:
    """Tell a failure to connect or a TLS handshake that failed (nothing sent) from a
    connection lost after sending."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    tls = api.tls_failure(exc, base_url)
    if tls is not None:
        return tls
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError):
        return api.TransportFailure(f"could not connect to {base_url}", sent=False)
    return api.TransportFailure("the connection was closed before PostHog answered", sent=True)


def _explain(error: PostHogAPIError, hook: PostHogHook) -> str:
    """What ``test_connection`` shows for PostHog's answer, in the connection form's words."""
    detail = (error.detail or "").strip().rstrip(".")
    said = f": {detail}." if detail else "."
    if error.status == 401:
        return (
            f"PostHog rejected the API key{said} Put a valid personal API key (phx_...) in the "
            "connection's password, the form's Personal API key."
        )
    if error.status == 403:
        return (
            f"The API key may not read batch exports of project {hook.project()} at "
            f"{hook.settings.base_url}{said} Give it the batch_export:read and "
            "batch_export:write scopes and access to the project, and check the Project ID."
        )
    if error.status == 404:
        return (
            f"PostHog has no project {hook.project()} at {hook.settings.base_url}{said} Check "
            "the Project ID and the PostHog URL (US or EU Cloud)."
        )
    return str(error)
