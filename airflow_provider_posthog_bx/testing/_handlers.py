"""Endpoint logic: one function per route row (see ``_routes``), called with the state lock held."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import _errors
from ._http import InvalidBody
from ._model import (
    IN_FLIGHT,
    RUN_STATUSES,
    Backfill,
    BatchExport,
    Run,
    backfill_dict,
    backfill_workflow_id,
    export_dict,
    log_dict,
    run_dict,
)
from ._pagination import cursor_page, limit_offset
from ._state import State, new_id
from ._timeutil import parse_query_date
from ._validation import backfill_bound, boolean, drf_datetime, integer, validate_export

UTC = timezone.utc

Result = tuple[int, Any]


def is_uuid(value: str | None) -> bool:
    """Whether a path segment parses as a UUID (malformed ids are 404, not 400, in PostHog)."""
    if value is None:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass
class Ctx:
    """One request as the handlers see it; ``export_id``/``sub_id`` are the path's segments."""

    state: State
    export_id: str | None
    sub_id: str | None
    team_id: int
    method: str
    path: str
    query: dict[str, list[str]]
    body: object
    base: str
    now: datetime

    def data(self) -> object:
        """The parsed body (``{}`` when empty); 400 parse_error when it was not JSON."""
        if isinstance(self.body, InvalidBody):
            raise _errors.parse_error(self.body.message)
        return {} if self.body is None else self.body

    def export(self, detail: str = "Not found.") -> BatchExport:
        """The export in the URL, in this team and not deleted, else 404."""
        export = None
        if self.export_id is not None and is_uuid(self.export_id):
            export = self.state.export_or_none(self.export_id, self.team_id)
        if export is None:
            raise _errors.not_found(detail)
        return export

    def render(self, export: BatchExport) -> dict[str, Any]:
        """BatchExport resource with its latest runs."""
        runs = self.state.export_runs(export.id, 10)
        return export_dict(export, runs, self.state.run_backfill_field)

    def render_run(self, run: Run) -> dict[str, Any]:
        """BatchExportRun resource in the emulated deployment's shape."""
        return run_dict(run, self.state.run_backfill_field)

    def render_backfill(self, backfill: Backfill) -> dict[str, Any]:
        """Backfill resource."""
        return backfill_dict(backfill, self.state.backfill_runs(backfill), self.now)


Handler = Callable[[Ctx], Result]


# -- batch exports --------------------------------------------------------------------------


def list_exports(ctx: Ctx) -> Result:
    exports = [
        e
        for e in ctx.state.exports.values()
        if e.team_id == ctx.team_id and not e.deleted and e.destination_type != "Workflows"
    ]
    exports.sort(key=lambda e: (e.created_at, e.id), reverse=True)
    page = limit_offset(exports, ctx.base, ctx.path, ctx.query)
    page["results"] = [ctx.render(e) for e in page["results"]]
    return 200, page


def create_export(ctx: Ctx) -> Result:
    fields = validate_export(ctx.data(), None, False, ctx.state.high_frequency_enabled)
    export = BatchExport(
        id=new_id(),
        team_id=ctx.team_id,
        name=fields["name"],
        model=fields["model"],
        destination_type=fields["destination_type"],
        config=fields["config"],
        integration=fields.get("integration"),
        interval=fields["interval"],
        paused=fields.get("paused", False),
        created_at=ctx.now,
        last_updated_at=ctx.now,
    )
    _apply(export, fields, merge_config=False)
    ctx.state.exports[export.id] = export
    return 201, ctx.render(export)


def _apply(export: BatchExport, fields: dict[str, Any], merge_config: bool) -> None:
    for name, value in fields.items():
        if name == "config" and merge_config:
            value = _merge(export.config, value)
        setattr(export, name, value)
    if export.interval != "week":
        export.offset_day = None
    if export.interval not in ("day", "week"):
        export.offset_hour = None


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """PostHog deep-merges ``destination.config`` so omitted secrets are kept."""
    out = dict(old)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def retrieve_export(ctx: Ctx) -> Result:
    return 200, ctx.render(ctx.export())


def update_export(ctx: Ctx) -> Result:
    export = ctx.export()
    fields = validate_export(
        ctx.data(), export, ctx.method == "PATCH", ctx.state.high_frequency_enabled
    )
    _apply(export, fields, merge_config=True)
    export.last_updated_at = ctx.now
    return 200, ctx.render(export)


def delete_export(ctx: Ctx) -> Result:
    ctx.state.delete_export(ctx.export(), ctx.now)
    return 204, None


def pause(ctx: Ctx) -> Result:
    export = ctx.export()
    if not export.paused:  # already paused: no-op, last_updated_at unchanged
        export.paused = True
        export.last_paused_at = ctx.now
        export.last_updated_at = ctx.now
    return 200, {"paused": True}


def unpause(ctx: Ctx) -> Result:
    export = ctx.export()
    data = ctx.data()
    backfill = (
        boolean(data["backfill"], "backfill")
        if isinstance(data, dict) and "backfill" in data
        else False
    )
    if export.paused:
        export.paused = False
        export.last_updated_at = ctx.now
        if backfill:
            # Never paused through the action (created paused): start from creation. UNVERIFIED.
            start = export.last_paused_at or export.created_at
            ctx.state.create_backfill(export, start, ctx.now)
    return 200, {"paused": False}


def export_logs(ctx: Ctx) -> Result:
    export = ctx.export()
    q = ctx.query
    limit = integer(q["limit"][0], "limit", 1, 500) if "limit" in q else 50
    after = drf_datetime(q["after"][0], "after") if "after" in q else None
    before = drf_datetime(q["before"][0], "before") if "before" in q else None
    levels = {p.strip().upper() for v in q.get("level", []) for p in v.split(",") if p.strip()}
    search = q["search"][0].lower() if q.get("search") else None
    instance = q["instance_id"][0] if q.get("instance_id") else None
    rows = []
    for entry in ctx.state.logs_for(export.id, visible_at=ctx.now):
        if after is not None and entry.timestamp <= after:
            continue
        if before is not None and entry.timestamp >= before:
            continue
        if levels and entry.level not in levels:
            continue
        if search is not None and search not in entry.message.lower():
            continue
        if instance is not None and entry.instance_id != instance:
            continue
        rows.append(log_dict(entry))
        if len(rows) >= limit:
            break
    return 200, limit_offset(rows, ctx.base, ctx.path, ctx.query)


def legacy_backfill(ctx: Ctx) -> Result:
    # Old PostHog returned the Temporal workflow id here. With `legacy_deployment` set the
    # emulator does too; with only `legacy_backfill_route` set it returns the id of the
    # BatchExportBackfill row, so clients can poll it through the backfills routes.
    ctx.state.backfill_creates.append(ctx.export_id or "")
    backfill = _create_backfill(ctx, ctx.export("BatchExport not found."))
    if ctx.state.legacy_deployment is not None:
        return 200, {"backfill_id": _workflow_id(backfill)}
    return 200, {"backfill_id": backfill.id}


def _workflow_id(backfill: Backfill) -> str:
    return backfill_workflow_id(backfill.batch_export, backfill.start_at, backfill.end_at)


# -- runs -----------------------------------------------------------------------------------


def _run_filter(ctx: Ctx) -> tuple[Callable[[Run], bool], str]:
    q = ctx.query
    statuses = q.get("status", [])
    for status in statuses:
        if status not in RUN_STATUSES:
            raise _errors.validation(
                f'"{status}" is not a valid choice.', "status", "invalid_choice"
            )
    ordering = (q.get("ordering") or ["-created_at"])[0]
    if ordering not in ("created_at", "-created_at", "data_interval_start", "-data_interval_start"):
        raise _errors.validation(
            f'"{ordering}" is not a valid choice.', "ordering", "invalid_choice"
        )

    def when(name: str, default: str | None) -> datetime:
        raw = q[name][0] if q.get(name) else default
        if raw is None:
            return ctx.now
        parsed = parse_query_date(raw, ctx.now)
        if parsed is None:  # UNVERIFIED: PostHog's message for an unparseable relative date
            raise _errors.validation(f"Invalid date: {raw}", name)
        return parsed

    if ordering.endswith("data_interval_start"):
        low, high = when("start", "-7d"), when("end", None)

        def keep(run: Run) -> bool:
            start = run.data_interval_start
            return start is not None and start >= low and run.data_interval_end <= high
    else:
        low, high = when("after", "-7d"), when("before", None)

        def keep(run: Run) -> bool:
            return low <= run.created_at <= high

    def accept(run: Run) -> bool:
        return (not statuses or run.status in statuses) and keep(run)

    return accept, ordering


def list_runs(ctx: Ctx) -> Result:
    export = ctx.export()
    accept, ordering = _run_filter(ctx)
    runs = [r for r in ctx.state.export_runs(export.id) if accept(r)]
    field = ordering.lstrip("-")

    def key(run: Run) -> tuple[datetime | None, str]:
        return (
            run.data_interval_start if field == "data_interval_start" else run.created_at,
            run.id,
        )

    page, nxt, prev = cursor_page(
        runs, key, ordering.startswith("-"), ctx.base, ctx.path, ctx.query, 100
    )
    return 200, {"next": nxt, "previous": prev, "results": [ctx.render_run(r) for r in page]}


def _the_run(ctx: Ctx) -> tuple[BatchExport, Run]:
    export = ctx.export()
    accept, _ = _run_filter(ctx)  # the list's date window applies to retrieve/retry/cancel too
    run = ctx.state.runs.get(ctx.sub_id or "") if is_uuid(ctx.sub_id) else None
    if run is None or run.batch_export != export.id or run.status == "Pending" or not accept(run):
        raise _errors.not_found()
    return export, run


def retrieve_run(ctx: Ctx) -> Result:
    return 200, ctx.render_run(_the_run(ctx)[1])


def retry_run(ctx: Ctx) -> Result:
    export, run = _the_run(ctx)
    start, end = run.data_interval_start, run.data_interval_end
    ctx.state.create_backfill(export, start, end)  # no cap check, no date validation (as PostHog)
    status = 200 if ctx.state.legacy_deployment is not None else 201  # older code: plain 200
    return status, {"backfill_id": backfill_workflow_id(export.id, start, end)}


def cancel_run(ctx: Ctx) -> Result:
    _, run = _the_run(ctx)
    if run.status not in IN_FLIGHT:
        raise _errors.validation(f"Cannot cancel a run that is in '{run.status}' status")
    ctx.state.cancel_run(run, ctx.now)
    return 200, {"cancelled": True}


def run_logs(ctx: Ctx) -> Result:
    _the_run(ctx)
    # Derived from PostHog's newest code: the run viewset looks up a missing parent kwarg and
    # errors, so this route answers 500. Clients should use the export-level logs instead.
    raise _errors.server_error()


# -- backfills ------------------------------------------------------------------------------


def list_backfills(ctx: Ctx) -> Result:
    export = ctx.export()
    ordering = (ctx.query.get("ordering") or ["-created_at"])[0]
    if ordering not in ("created_at", "-created_at", "start_at", "-start_at"):
        ordering = "-created_at"  # DRF's OrderingFilter ignores unknown fields
    field = ordering.lstrip("-")

    def key(b: Backfill) -> tuple[datetime | None, str]:
        return (b.start_at if field == "start_at" else b.created_at, b.id)

    rows = list(ctx.state.visible_backfills(export.id))
    page, nxt, prev = cursor_page(
        rows, key, ordering.startswith("-"), ctx.base, ctx.path, ctx.query, 50
    )
    return 200, {"next": nxt, "previous": prev, "results": [ctx.render_backfill(b) for b in page]}


def _create_backfill(ctx: Ctx, export: BatchExport) -> Backfill:
    data = ctx.data()
    if not isinstance(data, dict):
        data = {}
    raw_start, raw_end = data.get("start_at"), data.get("end_at")
    if raw_start is None:
        raise _errors.validation(
            "Backfilling from the beginning of time is not enabled for this team."
        )
    cap = ctx.state.max_concurrent_backfills
    if ctx.state.in_flight_backfills(ctx.team_id) >= cap:
        raise _errors.too_many_backfills(cap)
    start = backfill_bound(raw_start, export)
    end = backfill_bound(raw_end, export) if raw_end is not None else None
    if end is not None:
        if start >= end:
            raise _errors.validation(
                "The initial backfill datetime 'start_at' must be before 'end_at'"
            )
        if end > ctx.now:
            raise _errors.validation(f"The provided 'end_at' ({end.isoformat()}) is in the future")
    else:
        # Open-ended backfills are refused by the service and the error escapes: derived 500.
        raise _errors.server_error()
    return ctx.state.create_backfill(export, start.astimezone(UTC), end.astimezone(UTC))


def create_backfill(ctx: Ctx) -> Result:
    if ctx.state.legacy_backfill_route == "405":
        # A deployment whose backfills viewset had no create action yet.
        raise _errors.method_not_allowed(ctx.method)
    ctx.state.backfill_creates.append(ctx.export_id or "")
    backfill = _create_backfill(ctx, ctx.export("BatchExport not found."))
    if ctx.state.legacy_deployment is not None:
        # Mid-2025 and older: 200 and the Temporal workflow id, not the row's UUID.
        return 200, {"backfill_id": _workflow_id(backfill)}
    return 201, {"backfill_id": backfill.id}


def _the_backfill(ctx: Ctx) -> Backfill:
    export = ctx.export()
    backfill = ctx.state.backfills.get(ctx.sub_id or "") if is_uuid(ctx.sub_id) else None
    if backfill is None or backfill.batch_export != export.id or backfill.status == "Pending":
        raise _errors.not_found()
    return backfill


def retrieve_backfill(ctx: Ctx) -> Result:
    return 200, ctx.render_backfill(_the_backfill(ctx))


def cancel_backfill(ctx: Ctx) -> Result:
    backfill = _the_backfill(ctx)
    if backfill.status not in IN_FLIGHT:
        raise _errors.validation(f"Cannot cancel a backfill that is in '{backfill.status}' status")
    ctx.state.end_backfill(backfill, "Cancelled", ctx.now)
    return 200, {"cancelled": True}
