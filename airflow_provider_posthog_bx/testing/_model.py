"""Emulator records (batch export, run, backfill, log entry, key) and their API renderings."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ._destinations import SECRET_FIELDS
from ._timeutil import INTERVALS, fmt

UTC = timezone.utc

MODELS = ("events", "persons", "sessions", "hogql")
RUN_STATUSES = (
    "Cancelled",
    "Completed",
    "ContinuedAsNew",
    "Failed",
    "FailedRetryable",
    "FailedBilling",
    "Terminated",
    "TimedOut",
    "Running",
    "Starting",
)
IN_FLIGHT = ("Starting", "Running")


@dataclass
class ApiKey:
    """A personal API key; ``project_ids`` is PostHog's ``scoped_teams`` (``None`` = all)."""

    key: str
    scopes: list[str]
    project_ids: list[int] | None = None
    revoked: bool = False


@dataclass
class Integration:
    """A team's Integration row (credentials for a destination); ``kind`` as PostHog names it."""

    id: int
    team_id: int
    kind: str
    config: dict[str, Any]
    sensitive_config: dict[str, Any]


@dataclass
class BatchExport:
    """A batch export (destination config stored with secrets; stripped on read)."""

    id: str
    team_id: int
    name: str
    model: str
    destination_type: str
    config: dict[str, Any]
    integration: int | None
    interval: str
    paused: bool
    created_at: datetime
    last_updated_at: datetime
    timezone: str = "UTC"
    offset_day: int | None = None
    offset_hour: int | None = None
    last_paused_at: datetime | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    hogql_query: str | None = None
    hogql_modifiers: Any = None
    primary_key: Any = None
    version_key: Any = None
    incremental_mode: str = "APPEND"
    filters: Any = None
    deleted: bool = False


@dataclass
class Run:
    """A batch export run; ``visible_at``/``final_*`` drive its lazy lifecycle."""

    id: str
    batch_export: str
    data_interval_start: datetime | None
    data_interval_end: datetime
    status: str
    created_at: datetime
    last_updated_at: datetime
    visible_at: datetime
    final_status: str
    final_at: datetime
    instance_id: str
    records_completed: int | None = None
    records_failed: int | None = None
    records_total_count: int | None = None
    bytes_exported: int | None = None
    latest_error: str | None = None
    final_error: str | None = None
    final_records: int | None = None
    finished_at: datetime | None = None
    backfill: str | None = None
    started_logged: bool = False


@dataclass
class Backfill:
    """A backfill and its scripted timeline (``phase`` ``Pending`` = row not created yet)."""

    id: str
    team: int
    batch_export: str
    start_at: datetime | None
    end_at: datetime | None
    interval: str
    intervals: list[tuple[datetime, datetime]]
    created_at: datetime
    last_updated_at: datetime
    visible_at: datetime
    starting_seconds: float
    run_seconds: float
    records_per_run: int
    status: str = "Pending"
    finished_at: datetime | None = None
    adjusted_start_at: datetime | None = None
    total_records_count: int | None = None
    next_at: datetime | None = None
    next_index: int = 0
    current_run: str | None = None
    run_ids: list[str] = field(default_factory=list)
    script: tuple[str, int, str | None] | None = None
    error: str | None = None
    data_start: datetime | None = None  # where the runs start (adjusted_start_at once known)


@dataclass
class LogEntry:
    """One batch export log line."""

    log_source_id: str
    instance_id: str
    timestamp: datetime
    level: str
    message: str
    seq: int = 0
    visible_at: datetime | None = None  # log ingestion is asynchronous: hidden until then


def strip_secrets(config: object, secrets: frozenset[str]) -> object:
    """Remove secret keys from ``config`` and its nested dicts on every read (lists are kept
    whole: ``remove_secret_fields_recursive`` in destinations.py recurses into dicts only)."""
    if isinstance(config, dict):
        return {k: strip_secrets(v, secrets) for k, v in config.items() if k not in secrets}
    return copy.deepcopy(config)


def run_dict(run: Run, backfill_field: bool = True) -> dict[str, Any]:
    """BatchExportRun resource (§8).

    :param backfill_field: render ``backfill``; PostHog's run model had no such column before
        the backfills viewset existed (the serializer renders ``__all__`` model fields).
    """
    # `batch_export_on_demand` is left out: UNVERIFIED that the API renders it.
    out = {
        "id": run.id,
        "status": run.status,
        "records_completed": run.records_completed,
        "records_failed": run.records_failed,
        "latest_error": run.latest_error,
        "data_interval_start": fmt(run.data_interval_start),
        "data_interval_end": fmt(run.data_interval_end),
        "cursor": None,
        "created_at": fmt(run.created_at),
        "finished_at": fmt(run.finished_at),
        "last_updated_at": fmt(run.last_updated_at),
        "records_total_count": run.records_total_count,
        "bytes_exported": run.bytes_exported,
        "batch_export": run.batch_export,
        "backfill": run.backfill,
    }
    if not backfill_field:
        del out["backfill"]
    return out


def export_dict(
    export: BatchExport, latest_runs: list[Run], backfill_field: bool = True
) -> dict[str, Any]:
    """BatchExport resource (§7), ``latest_runs`` already newest first (see ``run_dict``)."""
    secrets = SECRET_FIELDS.get(export.destination_type, frozenset())
    return {
        "id": export.id,
        "team_id": export.team_id,
        "name": export.name,
        "model": export.model,
        "destination": {
            "type": export.destination_type,
            "config": strip_secrets(export.config, secrets),
            "integration": export.integration,
        },
        "interval": export.interval,
        "paused": export.paused,
        "created_at": fmt(export.created_at),
        "last_updated_at": fmt(export.last_updated_at),
        "last_paused_at": fmt(export.last_paused_at),
        "start_at": fmt(export.start_at),
        "end_at": fmt(export.end_at),
        "latest_runs": [run_dict(r, backfill_field) for r in latest_runs[:10]],
        "hogql_query": export.hogql_query,
        "hogql_modifiers": copy.deepcopy(export.hogql_modifiers),
        "primary_key": copy.deepcopy(export.primary_key),
        "version_key": copy.deepcopy(export.version_key),
        "incremental_mode": export.incremental_mode,
        "schema": None,  # computed for the hogql model only; the emulator does not compile HogQL
        "filters": copy.deepcopy(export.filters),
        "timezone": export.timezone,
        "offset_day": (export.offset_day or 0) if export.interval == "week" else None,
        "offset_hour": (export.offset_hour or 0) if export.interval in ("day", "week") else None,
    }


def backfill_workflow_id(export_id: str, start: datetime | None, end: datetime | None) -> str:
    """The Temporal workflow id PostHog gives a backfill (``start_backfill_batch_export_workflow``).

    ``<batch_export_id>-Backfill-<start_at isoformat>-<end_at isoformat>`` in the project's
    timezone (UTC here); an open end renders as ``None``, as PostHog's f-string does.
    """
    first = start.astimezone(UTC).isoformat() if start is not None else "START"
    last = end.astimezone(UTC).isoformat() if end is not None else "None"
    return f"{export_id}-Backfill-{first}-{last}"


def shown_status(backfill: Backfill) -> str:
    """Status as the API shows it (the internal ``Pending`` phase is shown as ``Starting``)."""
    return "Starting" if backfill.status == "Pending" else backfill.status


def progress(backfill: Backfill, runs: list[Run], now: datetime) -> dict[str, Any] | None:
    """The computed ``progress`` object of a backfill (§9), or ``None``."""
    status = shown_status(backfill)
    if status not in ("Starting", "Running", "Completed"):
        return None
    start = backfill.adjusted_start_at or backfill.start_at
    if backfill.total_records_count == 0:
        expected = 0
    elif start is None:
        expected = 1
    else:
        end = backfill.end_at or backfill.finished_at or now
        expected = max(0, math.ceil((end - start) / INTERVALS[backfill.interval]))
    if status == "Completed":
        return {"total_runs": expected, "finished_runs": expected, "progress": 1.0}
    if not expected or start is None:  # get_progress: no estimate, or from the beginning
        return None
    finished = sum(1 for r in runs if r.status in ("Completed", "Failed"))
    total = max(expected, finished)
    ratio = round(finished / total, 1) if total else 0.0
    return {"total_runs": total, "finished_runs": finished, "progress": ratio}


def backfill_dict(backfill: Backfill, runs: list[Run], now: datetime) -> dict[str, Any]:
    """BatchExportBackfill resource (§9); a not-yet-created row renders as ``Starting``."""
    return {
        "id": backfill.id,
        "progress": progress(backfill, runs, now),
        "start_at": fmt(backfill.start_at),
        "end_at": fmt(backfill.end_at),
        "status": shown_status(backfill),
        "created_at": fmt(backfill.created_at),
        "finished_at": fmt(backfill.finished_at),
        "last_updated_at": fmt(backfill.last_updated_at),
        "total_records_count": backfill.total_records_count,
        "adjusted_start_at": fmt(backfill.adjusted_start_at),
        "team": backfill.team,
        "batch_export": backfill.batch_export,
    }


def log_dict(entry: LogEntry) -> dict[str, Any]:
    """Log entry in the newer shape (§10)."""
    return {
        "log_source_id": entry.log_source_id,
        "instance_id": entry.instance_id,
        "timestamp": fmt(entry.timestamp),
        "level": entry.level,
        "message": entry.message,
    }
