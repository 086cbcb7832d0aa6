"""Endpoint logic: one function per route row (see ``_routes``), called with the state lock held."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import _errors
from ._destinations import (
    BASE_FIELDS,
    CONFIG_FIELDS,
    DESTINATION_TESTS,
    OBJECT_STORAGE,
    TestStep,
)
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
from ._timeutil import relative_date_parse
from ._validation import (
    Rules,
    backfill_bound,
    drf_datetime,
    integer,
    merge_config,
    unpause_backfill,
    validate_export,
    writes_compressed_parquet,
)

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
    organization: str | None
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

    def rules(self, patch: bool = False) -> Rules:
        """What this team's request is validated against (integrations, flags, deployment)."""
        state = self.state
        return Rules(
            patch=patch,
            integrations={
                i.id: i for i in state.integrations.values() if i.team_id == self.team_id
            },
            high_frequency_enabled=state.high_frequency_enabled,
            legacy=state.legacy_deployment is not None,
        )

    def parent_id(self) -> str:
        """The export id of a nested route (runs, backfills): those viewsets only filter on it,
        so an unknown, another team's or a deleted export's lists answer, as PostHog does."""
        return self.export_id if is_uuid(self.export_id) and self.export_id else ""

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


def _listed(ctx: Ctx, teams: tuple[int, ...]) -> Result:
    exports = [
        e
        for e in ctx.state.exports.values()
        if e.team_id in teams and not e.deleted and e.destination_type != "Workflows"
    ]
    exports.sort(key=lambda e: (e.created_at, e.id), reverse=True)
    page = limit_offset(exports, ctx.base, ctx.path, ctx.query)
    page["results"] = [ctx.render(e) for e in page["results"]]
    return 200, page


def list_exports(ctx: Ctx) -> Result:
    return _listed(ctx, (ctx.team_id,))


def list_organization_exports(ctx: Ctx) -> Result:
    # The organization-level viewset: the same queryset filtered on team__organization_id.
    return _listed(ctx, ctx.state.project_ids)


def create_export(ctx: Ctx) -> Result:
    fields = validate_export(ctx.data(), None, ctx.rules())
    export = new_export(ctx.team_id, fields, ctx.now)
    ctx.state.exports[export.id] = export
    return 201, ctx.render(export)


def new_export(team_id: int, fields: dict[str, Any], now: datetime) -> BatchExport:
    """A BatchExport from validated fields, as ``BatchExportSerializer.create`` builds it."""
    config = dict(fields["config"])
    if fields["destination_type"] in OBJECT_STORAGE:
        config.setdefault("legacy_parquet_extension", False)  # _set_default_parquet_extension
    export = BatchExport(
        id=new_id(),
        team_id=team_id,
        name=fields["name"],
        model=fields["model"],
        destination_type=fields["destination_type"],
        config=config,
        integration=fields.get("integration"),
        interval=fields["interval"],
        paused=fields.get("paused", False),
        created_at=now,
        last_updated_at=now,
    )
    rest = {k: v for k, v in fields.items() if k not in ("config", "destination_type")}
    _apply(export, rest)
    return export


def _apply(export: BatchExport, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        setattr(export, name, value)
    if export.interval != "week":
        export.offset_day = None
    if export.interval not in ("day", "week"):
        export.offset_hour = None


def retrieve_export(ctx: Ctx) -> Result:
    return 200, ctx.render(ctx.export())


def update_export(ctx: Ctx) -> Result:
    export = ctx.export()
    fields = validate_export(ctx.data(), export, ctx.rules(patch=ctx.method == "PATCH"))
    if "config" in fields:
        if export.destination_type in OBJECT_STORAGE:  # _pin_existing_parquet_extension
            export.config.setdefault(
                "legacy_parquet_extension", writes_compressed_parquet(export.config)
            )
        fields["config"] = merge_config(export.config, fields["config"])
    fields.pop("destination_type", None)
    _apply(export, fields)
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
    backfill = unpause_backfill(ctx.data())  # validated before the export is looked up
    export = ctx.export()
    if export.paused:
        export.paused = False
        export.last_updated_at = ctx.now
        if backfill:
            # unpause_batch_export (products/batch_exports/backend/service.py) backfills
            # last_paused_at -> last_updated_at. An export created paused has no
            # last_paused_at, so that is a backfill from the beginning of time (start None,
            # not flag-gated on this path); its workflow starts at the earliest data, which
            # the emulator takes to be the export's creation (adjusted_start_at).
            ctx.state.create_backfill(export, export.last_paused_at, ctx.now)
    return 200, {"paused": False}


def _last(query: dict[str, list[str]], name: str) -> str | None:
    """A query parameter as DRF reads it from a QueryDict: the last value; blank = absent."""
    values = query.get(name)
    return values[-1] if values and values[-1] != "" else None


def _ilike(pattern: str) -> re.Pattern[str]:
    """ClickHouse ``message ILIKE '%<search>%'``: ``%`` and ``_`` stay wildcards, ``\\``
    escapes, case-insensitive."""
    out, chars = [], iter(f"%{pattern}%")
    for char in chars:
        if char == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def export_logs(ctx: Ctx) -> Result:
    # posthog/api/log_entries.py: LogEntryRequestSerializer over request.query_params, then
    # fetch_log_entries' WHERE clauses.
    export = ctx.export()
    q = ctx.query
    raw_limit, raw_after, raw_before = _last(q, "limit"), _last(q, "after"), _last(q, "before")
    limit = integer(raw_limit, "limit", 1, 500) if raw_limit is not None else 50
    after = drf_datetime(raw_after, "after") if raw_after is not None else None
    before = drf_datetime(raw_before, "before") if raw_before is not None else None
    # `level` is a CharField: of repeated values the last one counts, split on "," as sent
    # (no trimming), each upper-cased: `upper(level) in %(levels)s`.
    raw_level = _last(q, "level")
    levels = {part.upper() for part in raw_level.split(",")} if raw_level is not None else None
    raw_search = _last(q, "search")
    search = _ilike(raw_search) if raw_search is not None else None
    instance = _last(q, "instance_id")
    rows = []
    for entry in ctx.state.logs_for(export.id, visible_at=ctx.now):
        if after is not None and entry.timestamp <= after:
            continue
        if before is not None and entry.timestamp >= before:
            continue
        if levels is not None and entry.level.upper() not in levels:
            continue
        if search is not None and search.fullmatch(entry.message) is None:
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


_RUN_ORDERING = ("created_at", "data_interval_start")


def _ordering(ctx: Ctx, fields: tuple[str, ...]) -> str:
    """DRF ``OrderingFilter``: the valid terms of the last ``ordering`` (comma-separated);
    none valid (or none sent) -> the view's default ``-created_at``. The first term sorts."""
    raw = _last(ctx.query, "ordering")
    terms = [t.strip() for t in raw.split(",")] if raw is not None else []
    valid = [t for t in terms if t.lstrip("-") in fields]
    return valid[0] if valid else "-created_at"


def _run_filter(ctx: Ctx) -> tuple[Callable[[Run], bool], str]:
    """``BatchExportRunViewSet.safely_get_queryset`` (runs.py): it serves list, retrieve,
    retry and cancel alike, so the date window and statuses apply to all four."""
    q = ctx.query
    statuses = q.get("status", [])
    for index, status in enumerate(statuses):  # ListField(child=ChoiceField): attr status__<i>
        if status not in RUN_STATUSES:
            raise _errors.validation(
                f'"{status}" is not a valid choice.', f"status__{index}", "invalid_choice"
            )
    ordering = _ordering(ctx, _RUN_ORDERING)

    def when(name: str, default: str | None) -> datetime:
        # CharField(allow_blank=True): blank (or all spaces) means the default; anything else
        # goes through relative_date_parse, which never fails ("now" for what it cannot read).
        raw = (_last(q, name) or "").strip() or default
        return ctx.now if raw is None else relative_date_parse(raw, ctx.now)

    # The view compares the raw parameter, not the OrderingFilter's reading of it.
    if (q.get("ordering") or [""])[-1] in ("data_interval_start", "-data_interval_start"):
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


def _nested_export(ctx: Ctx) -> BatchExport | None:
    """The parent export of a runs/backfills route as those viewsets see it: any export of
    this team with that id, deleted ones included (they filter on the id, never on
    ``deleted``); ``None`` when there is none."""
    export = ctx.state.exports.get(ctx.parent_id())
    return export if export is not None and export.team_id == ctx.team_id else None


def list_runs(ctx: Ctx) -> Result:
    accept, ordering = _run_filter(ctx)
    export = _nested_export(ctx)
    runs = [r for r in ctx.state.export_runs(export.id) if accept(r)] if export else []
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
    accept, _ = _run_filter(ctx)  # the list's date window applies to retrieve/retry/cancel too
    export = _nested_export(ctx)
    run = ctx.state.runs.get(ctx.sub_id or "") if is_uuid(ctx.sub_id) else None
    if (
        export is None
        or run is None
        or run.batch_export != export.id
        or run.status == "Pending"
        or not accept(run)
    ):
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
    ordering = _ordering(ctx, ("created_at", "start_at"))
    field = ordering.lstrip("-")

    def key(b: Backfill) -> tuple[datetime | None, str]:
        return (b.start_at if field == "start_at" else b.created_at, b.id)

    export = _nested_export(ctx)
    rows = list(ctx.state.visible_backfills(export.id)) if export is not None else []
    page, nxt, prev = cursor_page(
        rows, key, ordering.startswith("-"), ctx.base, ctx.path, ctx.query, 50
    )
    return 200, {"next": nxt, "previous": prev, "results": [ctx.render_backfill(b) for b in page]}


def _create_backfill(ctx: Ctx, export: BatchExport) -> Backfill:
    # create_backfill (presentation/views/batch_export/backfills.py), step by step.
    data = ctx.data()
    if not isinstance(data, dict):
        raise _errors.server_error()  # `request.data.get(...)` on a JSON list
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
    if end is None:
        # `start_at is None or end_at is None` goes straight to backfill_export, outside the
        # try: HTTP and NoOp exports take an open end (backfill until caught up), any other
        # destination raises BatchExportWithNoEndNotAllowedError, which escapes as a 500.
        if export.destination_type not in ("HTTP", "NoOp"):
            raise _errors.server_error()
        return ctx.state.create_backfill(export, start.astimezone(UTC), None)
    if start >= end:
        raise _errors.validation("The initial backfill datetime 'start_at' must be before 'end_at'")
    if end > ctx.now:
        raise _errors.validation(f"The provided 'end_at' ({end.isoformat()}) is in the future")
    return ctx.state.create_backfill(export, start.astimezone(UTC), end.astimezone(UTC))


def create_backfill(ctx: Ctx) -> Result:
    if ctx.state.legacy_backfill_route == "405":
        # A deployment whose backfills viewset had no create action yet.
        raise _errors.method_not_allowed(ctx.method)
    ctx.state.backfill_creates.append(ctx.export_id or "")
    # `BatchExport.objects.get(id=..., team_id=...)`: the default manager, deleted ones too.
    export = _nested_export(ctx)
    if export is None:
        raise _errors.not_found("BatchExport not found.")
    backfill = _create_backfill(ctx, export)
    if ctx.state.legacy_deployment is not None:
        # Mid-2025 and older: 200 and the Temporal workflow id, not the row's UUID.
        return 200, {"backfill_id": _workflow_id(backfill)}
    return 201, {"backfill_id": backfill.id}


def _the_backfill(ctx: Ctx) -> Backfill:
    export = _nested_export(ctx)
    backfill = ctx.state.backfills.get(ctx.sub_id or "") if is_uuid(ctx.sub_id) else None
    if (
        export is None
        or backfill is None
        or backfill.batch_export != export.id
        or backfill.status == "Pending"
    ):
        raise _errors.not_found()
    return backfill


# -- destination tests ----------------------------------------------------------------------


def _steps_of(destination: object) -> tuple[TestStep, ...]:
    """``get_destination_test``; a type without a test raises ValueError (callers map it)."""
    steps = DESTINATION_TESTS.get(destination) if isinstance(destination, str) else None
    if steps is None:
        raise ValueError(f"Unsupported destination: {destination}")
    return steps


def destination_test(ctx: Ctx) -> Result:
    # The `test` action answers bare statuses without a body (no error formatter).
    destination = _last(ctx.query, "destination")
    if not destination:
        return 400, None
    try:
        steps = _steps_of(destination)
    except ValueError:
        return 404, None
    return 200, {"steps": [_step_dict(step, None) for step in steps]}


def _step_dict(step: TestStep, result: dict[str, str | None] | None) -> dict[str, Any]:
    return {"name": step.name, "description": step.description, "result": result}


def _run_step(ctx: Ctx, fields: dict[str, Any], raw_step: object) -> Result:
    """``DestinationTest.configure(**config, **integration config)`` then ``run_step(step)``.

    The emulator contacts nothing: a configured step passes (or skips, as PostHog's do
    without a role to assume or an account to impersonate); an unconfigured one fails with
    PostHog's message. A step that is not an index of the list is PostHog's 500.
    """
    try:
        steps = _steps_of(fields["destination_type"])
    except ValueError:
        raise _errors.server_error() from None  # not caught in run_test_step*: a 500
    if not isinstance(raw_step, int) or not -len(steps) <= raw_step < len(steps):
        raise _errors.server_error()  # `self.steps[step]`: IndexError / TypeError
    step = steps[raw_step]
    configured = dict(fields["config"])
    integration = ctx.state.integrations.get(fields.get("integration") or -1)
    if integration is not None:
        configured.update(integration.config)
        configured.update(integration.sensitive_config)
    result: dict[str, str | None]
    if any(configured.get(key) is None for key in step.needs):
        result = {
            "status": "Failed",
            "message": "The test step cannot run as it's not configured.",
        }
    elif any(configured.get(key) is None for key in step.skip_unless):
        result = {"status": "Skipped", "message": step.skip_message}
    else:
        result = {"status": "Passed", "message": None}
    return 200, _step_dict(step, result)


def run_test_step_new(ctx: Ctx) -> Result:
    data = ctx.data()
    if not isinstance(data, dict):
        raise _errors.server_error()  # `request.data.pop("step", 0)`
    data = dict(data)
    raw_step = data.pop("step", 0)
    fields = validate_export(data, None, ctx.rules())
    return _run_step(ctx, fields, raw_step)


def run_test_step(ctx: Ctx) -> Result:
    data = ctx.data()
    if not isinstance(data, dict):
        raise _errors.server_error()
    data = dict(data)
    raw_step = data.pop("step", 0)
    export = ctx.export()
    destination = data.get("destination")
    if not isinstance(destination, dict) or not isinstance(destination.get("config"), dict):
        raise _errors.server_error()  # `data["destination"]["config"]`: KeyError/TypeError
    # The stored config (workflow input fields only) goes under the sent one; the serializer
    # validates it as a create, with the export as the destination's instance.
    known = {f.name for f in CONFIG_FIELDS.get(export.destination_type, ())} | BASE_FIELDS
    stored = {k: v for k, v in export.config.items() if k in known}
    data["destination"] = {**destination, "config": {**stored, **destination["config"]}}
    fields = validate_export(data, None, ctx.rules(), destination_of=export)
    # Only an integration sent in the body reaches the test configuration (the stored one
    # keeps the serializer's checks quiet but is not added to `validated_data`).
    return _run_step(ctx, fields, raw_step)


def retrieve_backfill(ctx: Ctx) -> Result:
    return 200, ctx.render_backfill(_the_backfill(ctx))


def cancel_backfill(ctx: Ctx) -> Result:
    backfill = _the_backfill(ctx)
    if backfill.status not in IN_FLIGHT:
        raise _errors.validation(f"Cannot cancel a backfill that is in '{backfill.status}' status")
    ctx.state.end_backfill(backfill, "Cancelled", ctx.now)
    return 200, {"cancelled": True}
