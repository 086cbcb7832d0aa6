"""Emulator state: the stores, one lock, and the lazily driven run/backfill lifecycles."""

from __future__ import annotations

import bisect
import heapq
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from ._destinations import SEEDED_INTEGRATIONS
from ._model import (
    IN_FLIGHT,
    ApiKey,
    Backfill,
    BatchExport,
    Integration,
    LogEntry,
    Run,
)
from ._timeutil import Clock, align, whole_intervals

UTC = timezone.utc

_FOREVER = datetime.max.replace(tzinfo=UTC)


def new_id() -> str:
    """A new object id (PostHog uses time-ordered UUIDT; uuid4 is close enough for clients)."""
    return str(uuid.uuid4())


def _range(start: datetime | None, end: datetime) -> str:
    first = start.astimezone(UTC).isoformat() if start is not None else "START"
    return f"{first} - {end.astimezone(UTC).isoformat()}"


class State:
    """All emulator data; every public method must be called with ``lock`` held.

    Lifecycles are computed lazily: ``tick()`` replays every transition due by the emulator
    clock, stamping each with the time it was due (not the time it was noticed). In-flight runs
    and backfills wait in a heap by their next due time, so a request costs the transitions
    that are due, not the number of live backfills.
    """

    def __init__(
        self,
        project_id: int,
        backfill_create_delay: float,
        backfill_starting_seconds: float,
        run_seconds: float,
        max_concurrent_backfills: int,
        high_frequency_enabled: bool,
        records_per_run: int,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.project_id = project_id
        # A second project in the same organization, for cross-project 404 tests.
        self.project_ids = (project_id, project_id + 1)
        self.organization_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"emulator-org-{project_id}"))
        # One Integration of every kind per project (ids 1.. for the first project), so any
        # destination PostHog creates today can be created here too.
        self.integrations: dict[int, Integration] = {}
        for team in self.project_ids:
            for kind, (config, sensitive) in SEEDED_INTEGRATIONS.items():
                self.add_integration(team, kind, dict(config), dict(sensitive))
        self.backfill_create_delay = backfill_create_delay
        self.backfill_starting_seconds = backfill_starting_seconds
        self.run_seconds = run_seconds
        self.max_concurrent_backfills = max_concurrent_backfills
        self.high_frequency_enabled = high_frequency_enabled
        self.records_per_run = records_per_run
        self.legacy_backfill_route: str | None = None
        self.legacy_deployment: str | None = None
        # Path export id of every backfill create request that reached its handler.
        self.backfill_creates: list[str] = []
        self.keys: dict[str, ApiKey] = {}
        self.exports: dict[str, BatchExport] = {}
        self.runs: dict[str, Run] = {}
        self.backfills: dict[str, Backfill] = {}
        self.logs: dict[str, list[LogEntry]] = {}  # by batch export id
        # Per export: (created_at, run id) of every run, ascending (Pending ones included).
        self._run_index: dict[str, list[tuple[datetime, str]]] = {}
        self._log_seq = 0
        self._active_runs: set[str] = set()
        self._active_backfills: set[str] = set()
        # (due time, push order, is_backfill, id); entries of ended items are skipped on pop.
        self._due: list[tuple[datetime, int, bool, str]] = []
        self._due_seq = 0
        self._run_failures: list[tuple[str, datetime, str]] = []
        self._scripts: dict[str, list[tuple[str, int, str | None]]] = {}

    # -- integrations -----------------------------------------------------------------------

    def add_integration(
        self, team_id: int, kind: str, config: dict[str, Any], sensitive: dict[str, Any]
    ) -> Integration:
        """Add an Integration row to a team; ids count up from 1 across teams."""
        integration = Integration(len(self.integrations) + 1, team_id, kind, config, sensitive)
        self.integrations[integration.id] = integration
        return integration

    def integration_id(self, team_id: int, kind: str) -> int:
        """The first integration of ``kind`` in a team (KeyError when there is none)."""
        for integration in self.integrations.values():
            if integration.team_id == team_id and integration.kind == kind:
                return integration.id
        raise KeyError(f"no {kind!r} integration in project {team_id}")

    # -- clock ------------------------------------------------------------------------------

    def now(self) -> datetime:
        """Emulator time."""
        return self.clock.now()

    def tick(self) -> datetime:
        """Apply every transition due by now; returns now."""
        now = self.clock.now()
        due = self._due
        while due and due[0][0] <= now:
            _, _, is_backfill, ident = heapq.heappop(due)
            if is_backfill:
                if ident in self._active_backfills:
                    self._advance_backfill(self.backfills[ident], now)
                    self._schedule_backfill(self.backfills[ident])
            elif ident in self._active_runs:
                self._advance_run(self.runs[ident], now)
                self._schedule_run(self.runs[ident])
        return now

    def _push(self, at: datetime, is_backfill: bool, ident: str) -> None:
        if at < _FOREVER:
            self._due_seq += 1
            heapq.heappush(self._due, (at, self._due_seq, is_backfill, ident))

    def _schedule_run(self, run: Run) -> None:
        """Queue a scheduled-style run's next transition (it has one only while in flight)."""
        if run.id in self._active_runs:
            self._push(run.visible_at if run.status == "Pending" else run.final_at, False, run.id)

    def _schedule_backfill(self, b: Backfill) -> None:
        """Queue a backfill's next transition (it has one only while in flight)."""
        if b.id in self._active_backfills:
            at = b.visible_at if b.status == "Pending" else b.next_at
            if at is not None:
                self._push(at, True, b.id)

    # -- deployment -------------------------------------------------------------------------

    def serves(self, feature: str) -> bool:
        """Whether the emulated deployment has a route feature (see ``_routes``)."""
        if feature == "backfills":
            return self.legacy_deployment != "no-backfills"
        if feature == "legacy":
            return self.legacy_deployment is not None or self.legacy_backfill_route is not None
        return True

    @property
    def run_backfill_field(self) -> bool:
        """Whether runs render ``backfill`` (the column came with the backfills viewset)."""
        return self.legacy_deployment != "no-backfills"

    # -- logs -------------------------------------------------------------------------------

    def add_log(
        self,
        export_id: str,
        instance_id: str,
        timestamp: datetime,
        level: str,
        message: str,
        visible_at: datetime | None = None,
    ) -> LogEntry:
        """Append one log line to ``export_id``'s logs, hidden from the API until ``visible_at``."""
        self._log_seq += 1
        entry = LogEntry(
            export_id, instance_id, timestamp, level.upper(), message, self._log_seq, visible_at
        )
        self.logs.setdefault(export_id, []).append(entry)
        return entry

    # -- exports ----------------------------------------------------------------------------

    def export_runs(self, export_id: str, limit: int | None = None) -> list[Run]:
        """Existing (visible) runs of an export, newest ``created_at`` first.

        :param limit: at most this many (the newest); ``None`` = all.
        """
        out: list[Run] = []
        for _, run_id in reversed(self._run_index.get(export_id, [])):
            run = self.runs[run_id]
            if run.status != "Pending":
                out.append(run)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def _index_run(self, run: Run) -> None:
        bisect.insort(self._run_index.setdefault(run.batch_export, []), (run.created_at, run.id))

    def _reindex_runs(self, export_id: str) -> None:
        """Re-sort an export's run index after a run's ``created_at`` changed."""
        self._run_index[export_id] = sorted(
            (self.runs[i].created_at, i) for _, i in self._run_index.get(export_id, [])
        )

    def delete_export(self, export: BatchExport, now: datetime) -> None:
        """Soft delete: hide it, cancel its in-flight backfills and runs (best effort)."""
        export.deleted = True
        export.paused = True
        export.last_updated_at = now
        for backfill in list(self.backfills.values()):
            if backfill.batch_export == export.id and backfill.status in ("Pending", *IN_FLIGHT):
                self.end_backfill(backfill, "Cancelled", now)
        for run in [self.runs[i] for _, i in self._run_index.get(export.id, [])]:
            if run.status in ("Pending", *IN_FLIGHT):
                self.cancel_run(run, now)

    # -- runs -------------------------------------------------------------------------------

    def add_run(
        self,
        export_id: str,
        start: datetime | None,
        end: datetime,
        status: str,
        latest_error: str | None,
        records_completed: int | None,
        created_at: datetime | None,
        appear_after: float,
        running_for: float,
    ) -> Run:
        """Create a scheduled-style run that appears after ``appear_after`` seconds."""
        now = self.clock.now()
        visible_at = now + timedelta(seconds=appear_after)
        running = timedelta(seconds=running_for)
        final_at = _FOREVER if status in IN_FLIGHT else visible_at + running
        created = created_at or visible_at
        run = Run(
            id=new_id(),
            batch_export=export_id,
            data_interval_start=start,
            data_interval_end=end,
            status="Pending",
            created_at=created,
            last_updated_at=created,
            visible_at=visible_at,
            final_status=status,
            final_at=final_at,
            instance_id=new_id(),
            final_error=latest_error,
            final_records=records_completed,
        )
        self.runs[run.id] = run
        self._index_run(run)
        self._active_runs.add(run.id)
        self._advance_run(run, now)
        self._schedule_run(run)
        return run

    def _advance_run(self, run: Run, now: datetime) -> None:
        if run.status == "Pending":
            if now < run.visible_at:
                return
            run.status = "Running"
            run.records_total_count = run.final_records
            self._log_run_start(run, run.created_at)
        if run.status == "Running" and now >= run.final_at:
            explicit_old = run.created_at < run.visible_at
            stamp = (
                run.created_at + (run.final_at - run.visible_at) if explicit_old else run.final_at
            )
            self._finish_run(run, run.final_status, stamp, run.final_error, run.final_records)
        if run.status not in ("Pending", "Running"):
            self._active_runs.discard(run.id)

    def _log_run_start(self, run: Run, at: datetime) -> None:
        if not run.started_logged:
            run.started_logged = True
            rng = _range(run.data_interval_start, run.data_interval_end)
            message = f"Batch export for range {rng} starting."
            self.add_log(run.batch_export, run.instance_id, at, "INFO", message)

    def _finish_run(
        self, run: Run, status: str, at: datetime, error: str | None, records: int | None
    ) -> None:
        run.status = status
        run.finished_at = at
        run.last_updated_at = at
        rng = _range(run.data_interval_start, run.data_interval_end)
        if status == "Completed":
            run.records_completed = records
            run.latest_error = None
            self.add_log(
                run.batch_export,
                run.instance_id,
                at,
                "INFO",
                f"Batch export for range {rng} finished successfully: "
                f"{records or 0} records exported.",
            )
        elif status == "Cancelled":
            run.latest_error = error
            self.add_log(
                run.batch_export,
                run.instance_id,
                at,
                "INFO",
                f"Batch export for range {rng} was cancelled.",
            )
        else:
            run.records_completed = records
            run.latest_error = error
            self.add_log(
                run.batch_export,
                run.instance_id,
                at,
                "ERROR",
                f"Batch export for range {rng} failed: {error}",
            )

    def cancel_run(self, run: Run, now: datetime) -> None:
        """Set an in-flight run to ``Cancelled`` now."""
        if run.status == "Pending":
            run.visible_at = now
            if now < run.created_at:
                run.created_at = now
                self._reindex_runs(run.batch_export)
        self._finish_run(run, "Cancelled", now, None, run.records_completed)
        self._active_runs.discard(run.id)

    def fail_run(self, export_id: str, instant: datetime, error: str) -> None:
        """Make the next backfill run covering ``instant`` end ``Failed`` with ``error``."""
        self._run_failures.append((export_id, instant, error))

    def _take_failure(self, run: Run) -> str | None:
        for i, (export_id, instant, error) in enumerate(self._run_failures):
            start = run.data_interval_start
            if (
                export_id == run.batch_export
                and start is not None
                and start <= instant < run.data_interval_end
            ):
                del self._run_failures[i]
                return error
        return None

    # -- backfills --------------------------------------------------------------------------

    def in_flight_backfills(self, team_id: int) -> int:
        """Backfills of a team counting toward the concurrency cap."""
        # The not-yet-created ("Pending") phase counts too: in PostHog the row appears in
        # `Starting` a moment later, and a client hammering create must not slip past the cap.
        # Exactly the active ones: Pending, Starting and Running backfills.
        return sum(1 for i in self._active_backfills if self.backfills[i].team == team_id)

    def create_backfill(
        self, export: BatchExport, start: datetime | None, end: datetime | None
    ) -> Backfill:
        """Start a backfill over whole intervals of ``[start, end)``; its row appears later.

        ``start`` ``None`` is a backfill from the beginning of time: the workflow narrows it to
        the earliest data (``adjusted_start_at``), which the emulator takes to be the start of
        the interval the export was created in. ``end`` ``None`` (HTTP/NoOp only) backfills
        until caught up: up to the last whole interval before now.
        """
        now = self.clock.now()
        first = start
        if first is None:
            first = align(
                export.created_at,
                export.interval,
                export.timezone,
                export.offset_day or 0,
                export.offset_hour or 0,
            )
        intervals = whole_intervals(first, end or now, export.interval, export.timezone)
        queue = self._scripts.get(export.id)
        backfill = Backfill(
            id=new_id(),
            team=export.team_id,
            batch_export=export.id,
            start_at=start,
            end_at=end,
            interval=export.interval,
            intervals=intervals,
            created_at=now,
            last_updated_at=now,
            visible_at=now + timedelta(seconds=self.backfill_create_delay),
            starting_seconds=self.backfill_starting_seconds,
            run_seconds=self.run_seconds,
            records_per_run=self.records_per_run,
            script=queue.pop(0) if queue else None,
            data_start=first,
        )
        self.backfills[backfill.id] = backfill
        self._active_backfills.add(backfill.id)
        self._advance_backfill(backfill, now)
        self._schedule_backfill(backfill)
        return backfill

    def script_next_backfill(
        self, export_id: str, status: str, after_runs: int, error: str | None
    ) -> None:
        """Queue an outcome for the next backfill created for ``export_id``."""
        self._scripts.setdefault(export_id, []).append((status, after_runs, error))

    def backfill_runs(self, backfill: Backfill) -> list[Run]:
        """Runs spawned by a backfill, oldest first."""
        return [self.runs[r] for r in backfill.run_ids]

    def end_backfill(self, backfill: Backfill, status: str, at: datetime) -> None:
        """End a backfill with ``status`` at ``at``; its in-flight runs are cancelled."""
        if backfill.visible_at > at:
            backfill.visible_at = at
        backfill.status = status
        backfill.finished_at = at
        backfill.last_updated_at = at
        for run in self.backfill_runs(backfill):
            if run.status in IN_FLIGHT:
                self.cancel_run(run, at)
        self._active_backfills.discard(backfill.id)

    def _advance_backfill(self, b: Backfill, now: datetime) -> None:
        while b.id in self._active_backfills:
            if b.status == "Pending":
                if now < b.visible_at:
                    return
                b.status = "Starting"
                b.next_at = b.visible_at + timedelta(seconds=b.starting_seconds)
            elif b.status == "Starting":
                assert b.next_at is not None
                if now < b.next_at:
                    return
                at = b.next_at
                b.adjusted_start_at = b.data_start
                b.total_records_count = len(b.intervals) * b.records_per_run
                b.last_updated_at = at
                if b.total_records_count == 0:  # no whole interval: no runs, straight to the end
                    if not self._script_due(b, at):
                        self._complete(b, at)
                    return
                b.status = "Running"
                if not self._script_due(b, at):
                    self._start_next_run(b, at)
            elif b.status == "Running":
                assert b.next_at is not None
                if now < b.next_at:
                    return
                at = b.next_at
                run = self.runs[b.current_run] if b.current_run else None
                if run is not None and run.status == "Running":
                    error = self._take_failure(run)
                    if error is None:
                        self._finish_run(run, "Completed", at, None, b.records_per_run)
                        run.bytes_exported = b.records_per_run * 256
                    else:
                        self._finish_run(run, "Failed", at, error, 0)
                b.current_run = None
                b.last_updated_at = at
                if self._script_due(b, at):
                    return
                if b.next_index < len(b.intervals):
                    self._start_next_run(b, at)
                else:
                    self._complete(b, at)
            else:
                self._active_backfills.discard(b.id)

    def _script_due(self, b: Backfill, at: datetime) -> bool:
        if b.script is None:
            return False
        status, after_runs, error = b.script
        finished = sum(1 for r in self.backfill_runs(b) if r.status not in IN_FLIGHT)
        if finished < after_runs and b.next_index < len(b.intervals):
            return False
        b.error = error  # coordinator errors go to log source `batch_exports_backfill`: not exposed
        self.end_backfill(b, status, at)
        return True

    def _start_next_run(self, b: Backfill, at: datetime) -> None:
        start, end = b.intervals[b.next_index]
        b.next_index += 1
        run = Run(
            id=new_id(),
            batch_export=b.batch_export,
            data_interval_start=start,
            data_interval_end=end,
            status="Running",
            created_at=at,
            last_updated_at=at,
            visible_at=at,
            final_status="Completed",
            final_at=at + timedelta(seconds=b.run_seconds),
            instance_id=new_id(),
            records_total_count=b.records_per_run,
            backfill=b.id,
        )
        self.runs[run.id] = run
        self._index_run(run)
        b.run_ids.append(run.id)
        b.current_run = run.id
        b.next_at = run.final_at
        self._log_run_start(run, at)

    def _complete(self, b: Backfill, at: datetime) -> None:
        b.total_records_count = sum(
            r.records_completed or 0 for r in self.backfill_runs(b) if r.status == "Completed"
        )
        b.status = "Completed"
        b.finished_at = at
        b.last_updated_at = at
        self._active_backfills.discard(b.id)

    # -- queries ----------------------------------------------------------------------------

    def visible_backfills(self, export_id: str) -> Iterable[Backfill]:
        """Backfill rows of an export that exist in PostHog's database."""
        return (
            b
            for b in self.backfills.values()
            if b.batch_export == export_id and b.status != "Pending"
        )

    def export_or_none(self, export_id: str, team_id: int | None = None) -> BatchExport | None:
        """A non-deleted export (of ``team_id`` when given)."""
        export = self.exports.get(export_id)
        if export is None or export.deleted or (team_id is not None and export.team_id != team_id):
            return None
        return export

    def logs_for(self, export_id: str, visible_at: datetime | None = None) -> list[LogEntry]:
        """Log lines of an export, newest first; with ``visible_at``, those ingested by then."""
        entries = [
            e
            for e in self.logs.get(export_id, [])
            if visible_at is None or e.visible_at is None or e.visible_at <= visible_at
        ]
        entries.sort(key=lambda e: (e.timestamp, e.seq), reverse=True)
        return entries

    def snapshot_key(self, key: str) -> dict[str, Any] | None:
        """A key's scopes and projects, or ``None`` when unknown or revoked."""
        api_key = self.keys.get(key)
        if api_key is None or api_key.revoked:
            return None
        return {"scopes": list(api_key.scopes), "project_ids": api_key.project_ids}
