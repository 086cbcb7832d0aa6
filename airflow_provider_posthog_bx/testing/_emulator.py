"""PostHogEmulator: the Python face of the emulator (server lifecycle, seeding, inspection)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any

from ._auth import POSTHOG_RATE_LIMIT, Throttle
from ._destinations import INTEGRATION_KINDS, OBJECT_STORAGE
from ._faults import FaultHandle, FaultSet
from ._http import Request, Response
from ._model import (
    IN_FLIGHT,
    MODELS,
    RUN_STATUSES,
    ApiKey,
    BatchExport,
    backfill_dict,
    export_dict,
    log_dict,
    run_dict,
)
from ._pipeline import handle
from ._recording import RecordedRequest, Recorder
from ._server import EmulatorServer
from ._state import State, new_id
from ._timeutil import INTERVALS, coerce

UTC = timezone.utc

# What PostHog creates today: AwsS3 needs an aws-s3 Integration (the seeded one is used).
_DEFAULT_CONFIG: dict[str, Any] = {
    "bucket_name": "emulator-bucket",
    "region": "us-east-1",
    "prefix": "posthog/",
    "file_format": "JSONLines",
    "compression": "gzip",
}
_LEGACY_ROUTE_MODES = (None, "405", "404", "catch-all")
_LEGACY_DEPLOYMENTS = (None, "workflow-ids", "no-backfills")


class PostHogEmulator:
    """A faithful local PostHog batch-exports HTTP API (standard library only).

    :param project_id: default project (team) id; project ``project_id + 1`` also exists.
    :param api_key: default personal API key, scopes ``["*"]``.
    :param host: interface to bind.
    :param port: TCP port; 0 picks a free one (see ``url``).
    :param backfill_create_delay: seconds after create during which the backfill row does not
        exist yet: GET and cancel by id answer 404 and the list leaves it out (also a property).
    :param backfill_starting_seconds: seconds a backfill stays ``Starting``.
    :param run_seconds: seconds each backfill run takes (runs are sequential); 0 allowed.
    :param max_concurrent_backfills: per-team cap on in-flight backfills (429 beyond it).
    :param rate_limit: ``(burst_per_minute, sustained_per_hour)`` per key, or ``None`` for off;
        default PostHog Cloud's ``(480, 4800)``. The pytest plugin's fixtures turn it off.
    :param high_frequency_enabled: the team's feature flag for "every 5 minutes" and "every 15
        minutes" exports over HTTP (off, as for most PostHog teams: 403 without it).
    :param records_per_run: records each backfill run exports (drives record counts).
    :param legacy_backfill_route: ``None`` (newest PostHog), or how a deployment without a
        backfills create action answers ``POST .../backfills/``: ``"405"``, ``"404"`` (an HTML
        page, e.g. from a proxy) or ``"catch-all"`` (PostHog's JSON 404 "Endpoint not found.");
        any mode also serves the deprecated ``POST .../backfill/`` (200, ``backfill_id`` = the
        row's UUID unless ``legacy_deployment`` says otherwise). Also a settable property.
    :param legacy_deployment: emulate an older PostHog as it really was (also a settable
        property):

        - ``None``: the newest code.
        - ``"workflow-ids"`` (mid-2025 and older): ``POST .../backfill/`` exists, and it and
          ``POST .../backfills/`` answer 200 ``{"backfill_id": "<workflow id>"}``, the Temporal
          workflow id ``<export_id>-Backfill-<start isoformat>-<end isoformat>``, not the row's
          UUID, so ``GET .../backfills/{workflow_id}/`` is 404 while the row (its own UUID) is
          listed and gettable; run ``retry`` answers 200 instead of 201.
        - ``"no-backfills"`` (before the backfills viewset): as ``"workflow-ids"``, but every
          ``.../backfills/...`` URL falls through to PostHog's catch-all (JSON 404 "Endpoint not
          found.", before authentication: the router has no such pattern) and runs carry no
          ``backfill`` field (the run model had no such column); follow a backfill through its
          runs by data interval. ``legacy_backfill_route`` modes do not apply to these URLs.

        The Python API (``backfills()``, ``runs()``, ``get_backfill()``) shows every deployment
        in the newest shape, row UUIDs and ``backfill`` fields included.
    """

    def __init__(
        self,
        project_id: int = 1,
        api_key: str = "phx_emulator_key",
        host: str = "127.0.0.1",
        port: int = 0,
        backfill_create_delay: float = 1.0,
        backfill_starting_seconds: float = 1.0,
        run_seconds: float = 1.0,
        max_concurrent_backfills: int = 5,
        rate_limit: tuple[int, int] | None = POSTHOG_RATE_LIMIT,
        high_frequency_enabled: bool = False,
        records_per_run: int = 100,
        legacy_backfill_route: str | None = None,
        legacy_deployment: str | None = None,
    ) -> None:
        self._state = State(
            project_id=project_id,
            backfill_create_delay=backfill_create_delay,
            backfill_starting_seconds=backfill_starting_seconds,
            run_seconds=run_seconds,
            max_concurrent_backfills=max_concurrent_backfills,
            high_frequency_enabled=high_frequency_enabled,
            records_per_run=records_per_run,
        )
        self._state.keys[api_key] = ApiKey(api_key, ["*"])
        self.legacy_backfill_route = legacy_backfill_route
        self.legacy_deployment = legacy_deployment
        self._api_key = api_key
        self._host = host
        self._port = port
        self._throttle = Throttle(*rate_limit) if rate_limit is not None else None
        self._faults = FaultSet()
        self._recorder = Recorder()
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._life_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> PostHogEmulator:
        """Start serving in a background thread (idempotent)."""
        with self._life_lock:
            if self._server is None:
                server = EmulatorServer(
                    (self._host, self._port), self._pipeline, self._faults, self._recorder
                )
                self._port = server.server_address[1]
                self._thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name="posthog-emulator",
                    daemon=True,
                )
                self._server = server
                self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close open connections (idempotent)."""
        with self._life_lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> PostHogEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _pipeline(self, request: Request) -> Response:
        return handle(self._state, self._throttle, request)

    # -- identity and clock -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. ``http://127.0.0.1:8123`` (valid after start)."""
        if self._server is None:
            raise RuntimeError(
                "PostHogEmulator is not started; call start() or use it as a context manager"
            )
        return f"http://{self._host}:{self._port}"

    @property
    def api_key(self) -> str:
        """The default key (scopes ``*``)."""
        return self._api_key

    @property
    def project_id(self) -> int:
        """The default project (team) id."""
        return self._state.project_id

    @property
    def other_project_id(self) -> int:
        """The second project of the same organization."""
        return self._state.project_ids[1]

    @property
    def organization_id(self) -> str:
        """The organization (a UUID) both projects belong to."""
        return self._state.organization_id

    def integration_id(self, destination_type: str, project_id: int | None = None) -> int:
        """The id of the seeded Integration a destination type needs (one per kind and project).

        :param destination_type: e.g. ``"AwsS3"``, ``"Snowflake"``, ``"BigQuery"``.
        :param project_id: whose integration; default the default project.
        """
        kind = INTEGRATION_KINDS.get(destination_type)
        if kind is None:
            raise ValueError(
                f"{destination_type!r} takes no Integration; types that do: "
                f"{sorted(INTEGRATION_KINDS)}"
            )
        with self._state.lock:
            return self._state.integration_id(
                self._state.project_id if project_id is None else project_id, kind
            )

    def add_integration(
        self,
        kind: str,
        config: dict[str, Any] | None = None,
        sensitive_config: dict[str, Any] | None = None,
        project_id: int | None = None,
    ) -> int:
        """Add an Integration row and return its id (e.g. one of the wrong ``kind``).

        :param kind: PostHog's kind, such as ``"aws-s3"``, ``"snowflake"``, ``"databricks"``.
        """
        with self._state.lock:
            team = self._state.project_id if project_id is None else project_id
            return self._state.add_integration(
                team, kind, dict(config or {}), dict(sensitive_config or {})
            ).id

    def now(self) -> datetime:
        """Current emulator time (aware UTC)."""
        return self._state.now()

    def advance(self, seconds: float) -> None:
        """Move the emulator clock forward; due lifecycle transitions happen at once."""
        with self._state.lock:
            self._state.clock.advance(seconds)
            self._state.tick()

    # -- keys -------------------------------------------------------------------------------

    def add_api_key(
        self, key: str, scopes: Sequence[str] = ("*",), project_ids: Iterable[int] | None = None
    ) -> None:
        """Add a personal API key.

        :param scopes: e.g. ``["batch_export:read"]``; ``*`` grants everything.
        :param project_ids: only these projects (PostHog ``scoped_teams``); ``None`` = all.
        """
        with self._state.lock:
            self._state.keys[key] = ApiKey(
                key, list(scopes), None if project_ids is None else list(project_ids)
            )

    def revoke_api_key(self, key: str) -> None:
        """Revoke a key: later requests with it get 401 authentication_failed."""
        with self._state.lock:
            if key in self._state.keys:
                self._state.keys[key].revoked = True

    # -- batch exports ----------------------------------------------------------------------

    def create_batch_export(
        self,
        name: str = "S3 export",
        interval: str = "hour",
        model: str = "events",
        destination: dict[str, Any] | None = None,
        paused: bool = False,
        timezone: str = "UTC",
        offset_day: int | None = None,
        offset_hour: int | None = None,
        project_id: int | None = None,
    ) -> dict[str, Any]:
        """Create a batch export directly (no HTTP, no feature flags); returns it as GET would.

        :param destination: ``{"type", "config", "integration"}``, stored as given (not
            validated); default an AwsS3 destination PostHog accepts today, on the project's
            seeded aws-s3 Integration.
        """
        if interval not in INTERVALS:
            raise ValueError(f"interval must be one of {sorted(INTERVALS)} (got {interval!r})")
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS} (got {model!r})")
        with self._state.lock:
            now = self._state.tick()
            team = project_id if project_id is not None else self._state.project_id
            dest = destination or {
                "type": "AwsS3",
                "config": _DEFAULT_CONFIG,
                "integration": self._state.integration_id(team, "aws-s3"),
            }
            config = json.loads(json.dumps(dest.get("config") or {}))
            if dest["type"] in OBJECT_STORAGE:
                config.setdefault("legacy_parquet_extension", False)  # as PostHog's create
            export = BatchExport(
                id=new_id(),
                team_id=team,
                name=name,
                model=model,
                destination_type=str(dest["type"]),
                config=config,
                integration=dest.get("integration", dest.get("integration_id")),
                interval=interval,
                paused=paused,
                created_at=now,
                last_updated_at=now,
                timezone=timezone,
                offset_day=offset_day if interval == "week" else None,
                offset_hour=offset_hour if interval in ("day", "week") else None,
            )
            self._state.exports[export.id] = export
            return export_dict(export, self._state.export_runs(export.id, 10))

    def get_batch_export(self, batch_export_id: str) -> dict[str, Any]:
        """A batch export as the API renders it (also after soft delete); KeyError if unknown."""
        with self._state.lock:
            self._state.tick()
            export = self._state.exports[batch_export_id]
            return export_dict(export, self._state.export_runs(export.id, 10))

    # -- runs and logs ----------------------------------------------------------------------

    def add_run(
        self,
        batch_export_id: str,
        data_interval_start: datetime | str | None,
        data_interval_end: datetime | str,
        status: str = "Completed",
        latest_error: str | None = None,
        records_completed: int | None = 100,
        created_at: datetime | str | None = None,
        appear_after: float = 0.0,
        running_for: float = 0.0,
    ) -> dict[str, Any]:
        """Add a scheduled run: it appears after ``appear_after`` s, Running for ``running_for`` s.

        Writes the INFO/ERROR log lines a real run writes. Returns the run as it is now.
        """
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES} (got {status!r})")
        start = (
            coerce(data_interval_start, "data_interval_start")
            if data_interval_start is not None
            else None
        )
        end = coerce(data_interval_end, "data_interval_end")
        created = coerce(created_at, "created_at") if created_at is not None else None
        with self._state.lock:
            self._state.tick()
            self._require_export(batch_export_id)
            run = self._state.add_run(
                batch_export_id,
                start,
                end,
                status,
                latest_error,
                records_completed,
                created,
                appear_after,
                running_for,
            )
            return run_dict(run)

    def runs(self, batch_export_id: str) -> list[dict[str, Any]]:
        """Existing runs of an export, newest first (no date window)."""
        with self._state.lock:
            self._state.tick()
            return [run_dict(r) for r in self._state.export_runs(batch_export_id)]

    def add_log(
        self,
        batch_export_id: str,
        message: str,
        level: str = "INFO",
        timestamp: datetime | str | None = None,
        instance_id: str | None = None,
        visible_after: float = 0.0,
    ) -> dict[str, Any]:
        """Append one log line.

        :param timestamp: the entry's ``timestamp`` (aware datetime or ISO string); default now.
        :param visible_after: seconds (emulator clock) before the logs endpoint returns it.
            PostHog ingests logs asynchronously, so an entry can appear after newer ones were
            already served: ``timestamp`` in the past with ``visible_after > 0`` scripts that.
        """
        with self._state.lock:
            now = self._state.tick()
            stamp = coerce(timestamp, "timestamp") if timestamp is not None else now
            entry = self._state.add_log(
                batch_export_id,
                instance_id or new_id(),
                stamp,
                level,
                message,
                _visible_at(now, visible_after),
            )
            return log_dict(entry)

    def add_logs(
        self,
        batch_export_id: str,
        entries: Iterable[tuple[datetime | str, str, str]],
        visible_after: float = 0.0,
    ) -> int:
        """Append many ``(timestamp, level, message)`` lines at once; returns how many.

        :param visible_after: as for ``add_log``, for every line.
        """
        count = 0
        with self._state.lock:
            instance = new_id()
            visible_at = _visible_at(self._state.now(), visible_after)
            for timestamp, level, message in entries:
                self._state.add_log(
                    batch_export_id,
                    instance,
                    coerce(timestamp, "timestamp"),
                    level,
                    message,
                    visible_at,
                )
                count += 1
        return count

    def logs(self, batch_export_id: str) -> list[dict[str, Any]]:
        """All log lines of an export, newest first (also those the API does not show yet)."""
        with self._state.lock:
            self._state.tick()
            return [log_dict(e) for e in self._state.logs_for(batch_export_id)]

    # -- backfills --------------------------------------------------------------------------

    def fail_run(
        self,
        batch_export_id: str,
        data_interval_start: datetime | str,
        error: str = "Destination unreachable",
    ) -> None:
        """The backfill run covering that instant (running or future) ends ``Failed``.

        The backfill itself still ends ``Completed``, as in PostHog.
        """
        with self._state.lock:
            self._state.tick()
            self._state.fail_run(
                batch_export_id, coerce(data_interval_start, "data_interval_start"), error
            )

    def script_next_backfill(
        self,
        batch_export_id: str,
        status: str = "Failed",
        after_runs: int = 0,
        error: str | None = None,
    ) -> None:
        """The next backfill of the export ends ``status`` after ``after_runs`` finished runs."""
        if status in IN_FLIGHT or status not in RUN_STATUSES or status == "Completed":
            raise ValueError(
                "status must be a final non-Completed status such as Failed or Cancelled "
                f"(got {status!r})"
            )
        with self._state.lock:
            self._state.script_next_backfill(batch_export_id, status, after_runs, error)

    def end_backfill(self, backfill_id: str, status: str = "Cancelled") -> dict[str, Any]:
        """End an existing backfill now with ``status`` (its in-flight runs are cancelled)."""
        if status in IN_FLIGHT or status not in RUN_STATUSES:
            raise ValueError(f"status must be a final status (got {status!r})")
        with self._state.lock:
            now = self._state.tick()
            backfill = self._state.backfills[backfill_id]
            self._state.end_backfill(backfill, status, now)
            return backfill_dict(backfill, self._state.backfill_runs(backfill), now)

    def get_backfill(self, backfill_id: str) -> dict[str, Any]:
        """A backfill as the API renders it, also while the API 404s it; KeyError if unknown."""
        with self._state.lock:
            now = self._state.tick()
            backfill = self._state.backfills[backfill_id]
            return backfill_dict(backfill, self._state.backfill_runs(backfill), now)

    def backfills(
        self,
        batch_export_id: str,
        start_at: datetime | str | None = None,
        end_at: datetime | str | None = None,
    ) -> list[dict[str, Any]]:
        """All backfills of an export (including not-yet-visible ones), newest first.

        Also those created by ``unpause`` with ``backfill`` and by run ``retry``.

        :param start_at: only backfills whose ``start_at`` is this instant (aware datetime or
            ISO string with offset); with ``end_at``, ``len(...)`` counts the backfill rows
            created for one range, e.g. to assert a range was backfilled exactly once.
        :param end_at: only backfills whose ``end_at`` is this instant.
        """
        start = coerce(start_at, "start_at") if start_at is not None else None
        end = coerce(end_at, "end_at") if end_at is not None else None
        with self._state.lock:
            now = self._state.tick()
            rows = [
                b
                for b in self._state.backfills.values()
                if b.batch_export == batch_export_id
                and (start is None or b.start_at == start)
                and (end is None or b.end_at == end)
            ]
            rows.sort(key=lambda b: (b.created_at, b.id), reverse=True)
            return [backfill_dict(b, self._state.backfill_runs(b), now) for b in rows]

    def backfill_creates(self, batch_export_id: str | None = None) -> int:
        """How many backfill create requests reached PostHog's handler, whatever they answered.

        Counts ``POST .../backfills/`` and the legacy ``POST .../backfill/`` that passed
        authentication, scopes and throttling (also those answered 400/429, and those whose
        answer a ``process=True`` fault then lost); not requests stopped before the handler
        (401/403, 429 throttled, faults without ``process``). ``count()`` counts what clients
        sent.

        :param batch_export_id: only requests for this export; ``None`` = all.
        """
        with self._state.lock:
            creates = self._state.backfill_creates
            if batch_export_id is None:
                return len(creates)
            return sum(1 for export_id in creates if export_id == batch_export_id)

    # -- faults and request log -------------------------------------------------------------

    def add_fault(
        self,
        method: str,
        path_regex: str,
        status: int | None = None,
        times: int | None = 1,
        retry_after: int | None = None,
        delay: float = 0.0,
        drop: bool = False,
        malformed: bool = False,
        process: bool = False,
        body: object = None,
    ) -> FaultHandle:
        """Inject a fault for requests matching ``method`` (``*`` = any) and ``path_regex``.

        :param status: respond with this status and a PostHog-style (or proxy-style) body.
        :param times: requests affected before it is spent; ``None`` = forever.
        :param retry_after: with status 429, the ``Retry-After`` header in whole seconds.
        :param delay: seconds to sleep before responding.
        :param drop: close the connection without a response.
        :param malformed: respond 200 with a body that is not valid JSON.
        :param process: run the real handler first (state changes), then apply the fault.
        :param body: JSON body to send instead.
        """
        return self._faults.add(
            FaultHandle(
                method,
                path_regex,
                status,
                times,
                retry_after,
                delay,
                drop,
                malformed,
                process,
                body,
            )
        )

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests received so far, in arrival order (keys appear only as fingerprints)."""
        return self._recorder.snapshot()

    def count(self, method: str, path_regex: str) -> int:
        """How many recorded requests match ``method`` (``*`` = any) and ``path_regex``."""
        return self._recorder.count(method, path_regex)

    def clear_requests(self) -> None:
        """Forget recorded requests."""
        self._recorder.clear()

    # -- deployment -------------------------------------------------------------------------

    @property
    def legacy_backfill_route(self) -> str | None:
        """``None`` (newest PostHog), or how an older one answers an unrouted POST .../backfills/:
        ``"405"``, ``"404"`` (an HTML page, e.g. from a proxy) or ``"catch-all"`` (PostHog's own
        JSON 404 "Endpoint not found."); any mode also serves ``POST .../backfill/``."""
        return self._state.legacy_backfill_route

    @legacy_backfill_route.setter
    def legacy_backfill_route(self, mode: str | None) -> None:
        if mode not in _LEGACY_ROUTE_MODES:
            raise ValueError(
                f"legacy_backfill_route must be one of {_LEGACY_ROUTE_MODES} (got {mode!r})"
            )
        with self._state.lock:
            self._state.legacy_backfill_route = mode

    @property
    def legacy_deployment(self) -> str | None:
        """``None`` (newest PostHog), ``"workflow-ids"`` or ``"no-backfills"`` (see the class)."""
        return self._state.legacy_deployment

    @legacy_deployment.setter
    def legacy_deployment(self, mode: str | None) -> None:
        if mode not in _LEGACY_DEPLOYMENTS:
            raise ValueError(
                f"legacy_deployment must be one of {_LEGACY_DEPLOYMENTS} (got {mode!r})"
            )
        with self._state.lock:
            self._state.legacy_deployment = mode

    @property
    def backfill_create_delay(self) -> float:
        """Seconds after create during which a new backfill's row does not exist yet.

        Meanwhile ``GET .../backfills/{id}/`` and ``cancel`` answer 404 and the list leaves it
        out (PostHog creates the row asynchronously, in the workflow). Setting it affects
        backfills created afterwards.
        """
        return self._state.backfill_create_delay

    @backfill_create_delay.setter
    def backfill_create_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"backfill_create_delay must be >= 0 seconds (got {seconds})")
        with self._state.lock:
            self._state.backfill_create_delay = seconds

    def _require_export(self, batch_export_id: str) -> None:
        if batch_export_id not in self._state.exports:
            raise KeyError(f"no batch export {batch_export_id!r} in the emulator")


def _visible_at(now: datetime, visible_after: float) -> datetime | None:
    if visible_after < 0:
        raise ValueError(f"visible_after must be >= 0 seconds (got {visible_after})")
    return now + timedelta(seconds=visible_after) if visible_after > 0 else None
