"""BatchExportBackfillOperator: backfill a date range of a batch export and wait for it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_posthog_bx._compat import AirflowTaskTimeout
from airflow_provider_posthog_bx._task import BatchExportTask, ExportedData, default_deferrable
from airflow_provider_posthog_bx._task_state import TaskRecord, is_last_try
from airflow_provider_posthog_bx.core import runs, statuses, waiting
from airflow_provider_posthog_bx.core.bounds import (
    format_bounds,
    interval_adjective,
    intervals,
    parse_bounds,
)
from airflow_provider_posthog_bx.core.time import format_instant, from_posthog
from airflow_provider_posthog_bx.exceptions import (
    BatchExportJobFailed,
    PostHogAmbiguousRequestError,
    PostHogAPIError,
    PostHogConcurrencyLimitError,
    PostHogError,
    PostHogInputError,
    PostHogNotFoundError,
)

if TYPE_CHECKING:
    from airflow_provider_posthog_bx.core.bounds import BackfillBounds


RECORD_NAME = "backfill"
CLOCK_SKEW = timedelta(minutes=1)


@dataclass(frozen=True)
class _Claim:
    """The backfill a task instance waits for, and whether it started it (only then may it
    cancel it)."""

    backfill_id: str
    ours: bool
    backfill: dict[str, Any] | None = None
    visible_by: float | None = None  # Unix time until which a 404 means "not visible yet"

    def to_json(self) -> dict[str, Any]:
        return {"backfill_id": self.backfill_id, "ours": self.ours, "visible_by": self.visible_by}

    @classmethod
    def from_json(cls, data: Any) -> _Claim:
        if not isinstance(data, dict) or not isinstance(data.get("backfill_id"), str):
            raise PostHogError(f"Backfill trigger carried an unusable backfill: {data!r}")
        visible_by = data.get("visible_by")
        return cls(data["backfill_id"], bool(data.get("ours")), None, visible_by)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _range_key(bounds: BackfillBounds) -> str:
    return f"{bounds.start_at} {bounds.end_at}"


def _seconds(param: str, value: float | timedelta) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        raise PostHogInputError(
            param,
            value,
            "must be a positive number of seconds",
            "pass e.g. 30 or timedelta(minutes=5)",
        )
    return float(seconds)


class BatchExportBackfillOperator(ExportedData, BatchExportTask):
    """Backfill ``[start_at, end_at)`` of a PostHog batch export and (by default) wait for it.

    Returns the backfill id. Never starts a second backfill of the range for one task
    instance: a retry resumes the backfill an earlier try recorded (``durable``), a lost answer
    is looked for before any new request, and a Starting/Running backfill of the same range
    started by somebody else is waited for instead of duplicated (and never cancelled). The
    team's concurrent-backfill cap is waited out, not failed on. ``timeout``, the last try's
    ``execution_timeout`` and a killed task cancel the backfill this task started.

    :param batch_export_id: the batch export to backfill (templated).
    :param start_at: start of the range: an aware datetime, a date or an ISO string (templated,
        e.g. ``"{{ data_interval_start }}"``). Daily and weekly exports take the day in their
        timezone; weekly bounds must fall on the export's ``offset_day``.
    :param end_at: end of the range, exclusive, not in the future (templated).
    :param wait_for_completion: wait until the backfill is final; if False, return once created.
    :param deferrable: wait in the triggerer instead of a worker slot. Defaults to Airflow's
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between two status checks.
    :param timeout: give up (cancel the backfill, fail) after this many seconds or this
        ``timedelta`` of waiting, queueing for a backfill slot included. None waits forever.
    :param not_found_grace: seconds a just-created backfill may stay invisible (PostHog creates
        its row asynchronously, so it 404s at first).
    :param max_consecutive_errors: transient API errors in a row tolerated while waiting.
    :param cancel_on_kill: cancel the backfill when the task is killed: SIGTERM, or on Airflow
        3.3+ a user marking the deferred task failed or success, or clearing it. Default True.
        Only a backfill this task instance started is ever cancelled.
    :param skip_completed: backfill only the intervals of the range that have no Completed,
        Starting or Running run (PostHog's own answer to duplicates), one backfill per
        contiguous gap; returns the list of backfill ids (``[]``, and nothing sent, when
        nothing is missing). Use it to re-run a range after a partial outage into an
        append-only destination.
    :param durable: remember which backfill this task instance started (Airflow 3.3+: the
        task state store; 2.10-3.2: an Airflow Variable deleted when the task is done), so a
        retry resumes it instead of creating another. A user's clear starts a new one.
    :param destination_uri: the asset URI of what the export writes, for the asset events
        sent through an ``AssetAlias`` in ``outlets``; default
        :func:`~airflow_provider_posthog_bx.assets.destination_uri` of the export (pass it
        where that is None, e.g. a Snowflake account kept in a PostHog Integration).
    :param partitioned_outlets: on Airflow 3.3+, give the events of the concrete Assets in
        ``outlets`` the partition keys of the backfilled intervals (one event per interval).
        Airflow then queues only partition-aware DAGs on them: leave it off for DAGs scheduled
        on the plain asset.

    When the backfill completes, every ``AssetAlias`` in ``outlets`` gets an event for the
    destination's asset and every concrete Asset's event gets the same ``extra``:
    ``batch_export_id``, ``data_interval_start``/``data_interval_end`` (the range, ISO),
    ``records_completed`` (PostHog's count), ``backfill_id`` and ``partition_key``.
    :param posthog_conn_id: the Airflow connection to PostHog.
    :param project_id: the PostHog project id (templated); defaults to the connection's.
    """

    template_fields: Sequence[str] = (*BatchExportTask.template_fields, "start_at", "end_at")

    def __init__(
        self,
        *,
        start_at: Any,
        end_at: Any,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float | timedelta = 30,
        timeout: float | timedelta | None = None,
        not_found_grace: float = 120,
        max_consecutive_errors: int = 5,
        cancel_on_kill: bool = True,
        durable: bool = True,
        skip_completed: bool = False,
        destination_uri: str | None = None,
        partitioned_outlets: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination_uri = destination_uri
        self.partitioned_outlets = partitioned_outlets
        self.start_at = start_at
        self.end_at = end_at
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = _seconds("poll_interval", poll_interval)
        self.timeout = None if timeout is None else _seconds("timeout", timeout)
        self.not_found_grace = _seconds("not_found_grace", not_found_grace)
        if (
            isinstance(max_consecutive_errors, bool)
            or not isinstance(max_consecutive_errors, int)
            or max_consecutive_errors < 0
        ):
            raise PostHogInputError(
                "max_consecutive_errors",
                max_consecutive_errors,
                "must be a whole number >= 0",
                "pass e.g. 5",
            )
        self.max_consecutive_errors = max_consecutive_errors
        self.cancel_on_kill = cancel_on_kill
        self.durable = durable
        self.skip_completed = skip_completed
        self.backfill_id: str | None = None
        self._ours = False
        self._no_listing = False
        self._notes = statuses.WaitNotes()
        self._started: datetime | None = None
        self._context: Any = None
        self._export: dict[str, Any] | None = None
        self._completed: list[dict[str, Any]] = []  # the Completed backfills, for outlets

    # ----------------------------------------------------------------------------------------
    # Start

    def execute(self, context: Any) -> Any:
        self.push_link(context)  # no API call: the link works even if the input is bad
        parse_bounds(self.start_at, self.end_at)  # bad input fails before any request
        try:
            return self._start(context, waiting.deadline_after(self.timeout, time.time()))
        except AirflowTaskTimeout:
            self._execution_timed_out(context)
            raise

    def execute_queued(self, context: Any, event: Any = None) -> Any:
        """Resume after waiting (deferred) for a free backfill slot: try to start again."""
        event = self.resume(event, "Backfill queue", {"slot_wait_over"})
        if event["status"] == waiting.TIMEOUT:
            self._raise_if_past(
                0.0,
                "while queued for a backfill slot (PostHog's per-team cap on running backfills)",
            )
        self.log.info("Waited for a free backfill slot in the triggerer; trying again")
        deadline = event.get("deadline")
        return self._start(context, float(deadline) if deadline is not None else None)

    def _start(self, context: Any, deadline: float | None) -> Any:
        self._context = context
        url = self.push_link(context)
        export = self._export = self.hook.get_batch_export(self.batch_export_id)
        bounds = format_bounds(export, self.start_at, self.end_at)
        self.log.info(
            "Backfilling %s batch export %r (%s) from %s to %s: %s",
            interval_adjective(export.get("interval")),
            export.get("name"),
            self.batch_export_id,
            bounds.start_at,
            bounds.end_at,
            url,
        )
        record = TaskRecord.for_context(context, RECORD_NAME) if self.durable else None
        if self.skip_completed:
            claims = self._claim_gaps(export, bounds, deadline, record)
        else:
            claims = [self._claim(bounds, deadline, record)]
        ids = [claim.backfill_id for claim in claims]
        if self.skip_completed:
            context["ti"].xcom_push(key="backfill_ids", value=ids)
        else:
            context["ti"].xcom_push(key="backfill_id", value=ids[0])
        if not self.wait_for_completion or not claims:
            self._forget(record)
            return ids if self.skip_completed else ids[0]
        return self._wait_all(claims, ids, deadline)

    def _claim(
        self, bounds: BackfillBounds, deadline: float | None, record: TaskRecord | None
    ) -> _Claim:
        return (
            self._resume(record, bounds)
            or self._adopt(bounds)
            or self._create(bounds, deadline, record)
        )

    def _claim_gaps(
        self,
        export: dict[str, Any],
        bounds: BackfillBounds,
        deadline: float | None,
        record: TaskRecord | None,
    ) -> list[_Claim]:
        """``skip_completed``: resume what an earlier try of this task started, then backfill
        the intervals without a Completed, Starting or Running run, merged into gaps."""
        resumed: list[tuple[BackfillBounds, _Claim]] = []
        for entry in self._entries(record).values():
            earlier = format_bounds(export, entry["start_at"], entry["end_at"])
            if bounds.start <= earlier.start and earlier.end <= bounds.end:
                claim = self._resume(record, earlier)  # None if it failed: its gaps count
                if claim is not None:
                    resumed.append((earlier, claim))
        grid = intervals(export, bounds)
        listed = self.hook.list_runs(
            self.batch_export_id, **runs.interval_filters(bounds.start, bounds.end)
        )
        covered = [(earlier.start, earlier.end) for earlier, _ in resumed]
        missing = [format_bounds(export, s, e) for s, e in runs.gaps(grid, listed, covered)]
        self.log.info(
            "%d intervals in the range; backfilling the ones without a Completed or running "
            "run: %s",
            len(grid),
            ", ".join(f"{gap.start_at} - {gap.end_at}" for gap in missing) or "none",
        )
        claimed = resumed + [(gap, self._claim(gap, deadline, record)) for gap in missing]
        claimed.sort(key=lambda pair: pair[0].start)
        return [claim for _, claim in claimed]

    def _wait_all(self, claims: list[_Claim], ids: list[str], deadline: float | None) -> Any:
        """Wait for each backfill in turn; return the id (the ids with ``skip_completed``)."""
        for index, claim in enumerate(claims):
            self.backfill_id, self._ours = claim.backfill_id, claim.ours
            if self._no_listing and not _is_uuid(claim.backfill_id):
                self._completed.append(self._follow_runs(claim, deadline))
                continue
            grace = waiting.NotFoundGrace(claim.visible_by)
            backfill = claim.backfill or self._check(claim.backfill_id, grace)
            if backfill is None or not statuses.is_final(statuses.status_of(backfill)):
                if self.deferrable:
                    carry = {
                        "pending": [later.to_json() for later in claims[index + 1 :]],
                        "ids": ids,
                        "deadline": deadline,
                        "completed": self._completed,
                    }
                    self._defer(claim.backfill_id, deadline, grace, carry)
                backfill = self._poll(claim.backfill_id, deadline, grace)
            self._finish(backfill)
        self._forget()
        self._record_completed()
        return ids if self.skip_completed else ids[0]

    def _record_completed(self) -> None:
        """Asset events and lineage for the backfills this task saw complete."""
        if not self._completed:
            return
        export = self._export
        if export is None and getattr(self, "outlets", None):
            export = self.hook.get_batch_export(self.batch_export_id)  # resumed from a trigger
        if export is None:
            export = {"id": self.batch_export_id}
        from airflow_provider_posthog_bx.assets import backfill_exported

        exported = [backfill_exported(export, backfill) for backfill in self._completed]
        keys = [key for _, interval_keys in exported for key in interval_keys]
        self.record_exported(self._context, export, [extra for extra, _ in exported], keys)

    # Which backfill is this task instance's. In order: the one its record names (an earlier
    # try of this task instance started it), one of this range created since the record's
    # intent (the answer to the create was lost, or the try crashed before storing it), a
    # Starting/Running one of this range started by somebody else (waited for, never
    # cancelled), or a new one.

    def _resume(self, record: TaskRecord | None, bounds: BackfillBounds) -> _Claim | None:
        stored = self._entries(record).get(_range_key(bounds))
        if not stored:
            return None
        since = from_posthog(stored.get("since")) or datetime.now(timezone.utc)
        backfill_id = stored.get("backfill_id")
        if not isinstance(backfill_id, str):
            self.log.info(
                "An earlier try may have created a backfill of this range without recording "
                "it: looking for it before creating one"
            )
            found = self._await_created_since(bounds, since)
            if found is None:
                return None
            claim = _Claim(str(found["id"]), ours=True, backfill=found)
            self._remember(record, bounds, since, claim)
            return self._take_over(claim)
        visible_by = float(stored.get("stored_at") or 0) + self.not_found_grace
        try:
            backfill = self.hook.get_backfill(self.batch_export_id, backfill_id)
        except PostHogNotFoundError:
            if time.time() >= visible_by:
                self.log.warning(
                    "Backfill %s, recorded by an earlier try, is not in PostHog; starting anew",
                    backfill_id,
                )
                return None
            backfill = None
        claim = _Claim(backfill_id, bool(stored.get("ours")), backfill, visible_by)
        return self._take_over(claim)

    def _take_over(self, claim: _Claim) -> _Claim | None:
        status = statuses.status_of(claim.backfill) if claim.backfill else "not visible yet"
        if claim.backfill is not None and status in statuses.FAILED:
            self.log.info(
                "Backfill %s of an earlier try ended %s; a retry starts a new one",
                claim.backfill_id,
                status,
            )
            return None
        self.log.info(
            "Resuming backfill %s (%s), started by an earlier try of this task, instead of "
            "starting another",
            claim.backfill_id,
            status,
        )
        return claim

    def _adopt(self, bounds: BackfillBounds) -> _Claim | None:
        existing = self._find(bounds, lambda b: statuses.status_of(b) in statuses.IN_FLIGHT)
        if existing is None:
            return None
        self.log.info(
            "Adopting backfill %s, already %s for the same range, instead of starting another "
            "(this task did not start it, so it never cancels it)",
            existing["id"],
            existing.get("status"),
        )
        return _Claim(str(existing["id"]), ours=False)

    def _find(
        self, bounds: BackfillBounds, wanted: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any] | None:
        """The newest backfill of this export over exactly this range that is ``wanted``."""
        if self._no_listing:
            return None
        # Newest first; the ones this looks for are recent, so two pages (100) are plenty.
        try:
            listed = self.hook.list_backfills(self.batch_export_id, max_pages=2)
        except PostHogAPIError as error:
            from airflow_provider_posthog_bx.api import is_missing_route  # the hook's layer

            if not is_missing_route(error):
                raise
            self._no_listing = True  # an older self-hosted PostHog
            self.log.info("This PostHog has no GET .../backfills/ route (%s)", error.status)
            return None
        for backfill in listed:
            if (
                from_posthog(backfill.get("start_at")) == bounds.start
                and from_posthog(backfill.get("end_at")) == bounds.end
                and wanted(backfill)
            ):
                return backfill
        return None

    def _await_created_since(
        self, bounds: BackfillBounds, since: datetime
    ) -> dict[str, Any] | None:
        """A backfill of this range created since ``since`` (any status), looked for as long
        as PostHog may take to make a just-created one visible."""
        # PostHog's clock and this worker's may differ a little.
        earliest = since - CLOCK_SKEW

        def created_since(backfill: dict[str, Any]) -> bool:
            created = from_posthog(backfill.get("created_at"))
            return created is not None and created >= earliest

        give_up = time.monotonic() + self.not_found_grace
        while True:
            found = self._find(bounds, created_since)
            if found is not None or self._no_listing or time.monotonic() >= give_up:
                return found
            time.sleep(min(self.poll_interval, 5.0, max(0.0, give_up - time.monotonic())))

    def _create(
        self, bounds: BackfillBounds, deadline: float | None, record: TaskRecord | None
    ) -> _Claim:
        since = self._started = datetime.now(timezone.utc)
        # The intent goes on record before the request, so a try that dies before storing the
        # answer still tells the next one to look before creating.
        self._remember(record, bounds, since, None)
        resolved_ambiguity = False
        while True:
            try:
                backfill_id = self.hook.create_backfill(
                    self.batch_export_id, bounds.start_at, bounds.end_at
                )
            except PostHogConcurrencyLimitError as error:
                self._raise_if_past(deadline, f"still queued for a backfill slot: {error.detail}")
                self.log.info(
                    "Queued: %s Trying again in %.0f s.", error.detail, self.poll_interval
                )
                if self.deferrable:
                    self._defer_queued(deadline)  # frees the worker slot while queued
                time.sleep(self.poll_interval)
                continue
            except PostHogAmbiguousRequestError as error:
                if resolved_ambiguity:
                    raise
                resolved_ambiguity = True
                self.log.warning(
                    "%s. The backfill may have been created: looking for it before trying again",
                    error,
                )
                found = self._await_created_since(bounds, since)
                if found is not None:
                    self.log.info("Found backfill %s: the create did reach PostHog", found["id"])
                    claim = _Claim(str(found["id"]), ours=True, backfill=found)
                    self._remember(record, bounds, since, claim)
                    return claim
                self.log.info("No backfill of this range appeared; creating it again")
                continue
            self.log.info("Started backfill %s", backfill_id)
            if not _is_uuid(backfill_id):
                backfill_id = self._row_of_workflow(backfill_id, bounds, since)
            claim = _Claim(backfill_id, ours=True, visible_by=time.time() + self.not_found_grace)
            self._remember(record, bounds, since, claim)
            return claim

    def _row_of_workflow(self, workflow_id: str, bounds: BackfillBounds, since: datetime) -> str:
        """Older self-hosted PostHog answers a create with the Temporal workflow id, which its
        ``GET .../backfills/{id}`` does not know: find the backfill row by its range."""
        found = self._await_created_since(bounds, since)
        if found is not None:
            self.log.info("Backfill %s is the row of workflow %s", found["id"], workflow_id)
            return str(found["id"])
        if self._no_listing:
            return workflow_id  # followed through its runs (see _follow_runs)
        raise BatchExportJobFailed(
            f"PostHog answered the create with {workflow_id!r}, not a backfill id, and no "
            f"backfill of {bounds.start_at} - {bounds.end_at} appeared within "
            f"not_found_grace={self.not_found_grace:.0f} s"
        )

    def _remember(
        self,
        record: TaskRecord | None,
        bounds: BackfillBounds,
        since: datetime,
        claim: _Claim | None,
    ) -> None:
        if record is None:
            return
        entries = self._entries(record)
        entries[_range_key(bounds)] = {
            "start_at": bounds.start_at,
            "end_at": bounds.end_at,
            "since": format_instant(since),
            "backfill_id": claim.backfill_id if claim else None,
            "ours": claim.ours if claim else True,
            "stored_at": time.time(),
        }
        record.set({"ranges": entries})

    @staticmethod
    def _entries(record: TaskRecord | None) -> dict[str, dict[str, Any]]:
        """What the record says, range by range (``"<start_at> <end_at>"``)."""
        stored = record.get() if record is not None else None
        ranges = stored.get("ranges") if isinstance(stored, dict) else None
        return dict(ranges) if isinstance(ranges, dict) else {}

    def _forget(self, record: TaskRecord | None = None) -> None:
        """Drop the record once this task instance is done with its backfill."""
        if record is None and self.durable and getattr(self, "_context", None) is not None:
            record = TaskRecord.for_context(self._context, RECORD_NAME)
        if record is not None:
            record.delete()

    # ----------------------------------------------------------------------------------------
    # Wait

    def _check(self, backfill_id: str, grace: waiting.NotFoundGrace) -> dict[str, Any] | None:
        """The backfill, or None while PostHog has not made it visible yet."""
        try:
            backfill = self.hook.get_backfill(self.batch_export_id, backfill_id)
        except PostHogError as error:
            if not grace.tolerates(error, time.time()):
                raise
            self.log.info("Backfill %s is not visible in PostHog yet", backfill_id)
            return None
        if (line := self._notes.changed(statuses.describe_backfill(backfill))) is not None:
            self.log.info("Backfill %s: %s", backfill_id, line)
        if (notice := self._notes.notice(statuses.status_of(backfill))) is not None:
            self.log.warning("%s", notice)
        return backfill

    def _defer(
        self,
        backfill_id: str,
        deadline: float | None,
        grace: waiting.NotFoundGrace,
        carry: dict[str, Any],
    ) -> None:
        from airflow_provider_posthog_bx.triggers.backfill import BatchExportBackfillTrigger

        reason = "timeout"
        # Airflow 2 enforces execution_timeout on a deferred task itself (without telling the
        # task), Airflow 3.3 not at all: the trigger ends the wait a little earlier, so the
        # task decides, the same way on both lines.
        execution_deadline = self._execution_deadline()
        if execution_deadline is not None and (deadline is None or execution_deadline < deadline):
            deadline, reason = execution_deadline, "execution_timeout"
        self.defer(
            trigger=BatchExportBackfillTrigger(
                **self.trigger_args(),
                backfill_id=backfill_id,
                poll_interval=self.poll_interval,
                deadline=deadline,
                deadline_reason=reason,
                not_found_until=grace.until,
                not_found_grace=self.not_found_grace,
                max_consecutive_errors=self.max_consecutive_errors,
                cancel_on_kill=self.cancel_on_kill and self._ours,
                ours=self._ours,
                carry=carry,
            ),
            method_name="execute_complete",
        )

    def _execution_deadline(self) -> float | None:
        if self.execution_timeout is None:
            return None
        ti = self._context["ti"] if self._context is not None else None
        started = getattr(ti, "start_date", None)
        begin = started.timestamp() if isinstance(started, datetime) else time.time()
        seconds = self.execution_timeout.total_seconds()
        return begin + seconds - min(30.0, 0.1 * seconds)

    def _follow_runs(self, claim: _Claim, deadline: float | None) -> dict[str, Any]:
        """Wait for a backfill of an older PostHog that has no ``backfills/`` routes: through
        the runs of its range created since it was started, in this worker (there is nothing to
        hand a trigger). Returns what a backfill row would have said of it."""
        export = self.hook.get_batch_export(self.batch_export_id)
        bounds = format_bounds(export, self.start_at, self.end_at)
        since = (self._started or datetime.now(timezone.utc)) - CLOCK_SKEW
        grid = intervals(export, bounds)
        self.log.info(
            "This PostHog has no backfills/ routes: following backfill %s through the runs of "
            "its %d intervals",
            claim.backfill_id,
            len(grid),
        )
        while True:
            listed = self.hook.list_runs(
                self.batch_export_id, **runs.interval_filters(bounds.start, bounds.end)
            )
            found = runs.runs_since(grid, listed, since)
            final = [r for r in found if r is not None and statuses.is_final(statuses.status_of(r))]
            self.log.info(
                "Backfill %s: %d/%d runs finished", claim.backfill_id, len(final), len(grid)
            )
            if len(final) == len(grid):
                failed = [r for r in final if statuses.status_of(r) != statuses.COMPLETED]
                if failed:
                    self._forget()
                    raise BatchExportJobFailed(
                        f"Backfill {claim.backfill_id} of batch export {self.batch_export_id}: "
                        f"{len(failed)} of its runs did not succeed:"
                        f"{runs.describe_failed_runs(failed)}"
                    )
                counts = [r.get("records_completed") for r in final]
                return {
                    "id": claim.backfill_id,
                    "status": statuses.COMPLETED,
                    "start_at": format_instant(bounds.start),
                    "end_at": format_instant(bounds.end),
                    "total_records_count": sum(c for c in counts if isinstance(c, int)),
                }
            if waiting.is_past(deadline, time.time()):
                raise BatchExportJobFailed(
                    f"Backfill {claim.backfill_id} of batch export {self.batch_export_id} did not "
                    f"finish within timeout={self.timeout:.0f} s (this PostHog cannot cancel it)"
                )
            time.sleep(waiting.next_wait(self.poll_interval, deadline, time.time()))

    def _defer_queued(self, deadline: float | None) -> None:
        from airflow_provider_posthog_bx.triggers.backfill import BackfillSlotWaitTrigger

        self.defer(
            trigger=BackfillSlotWaitTrigger(
                **self.trigger_args(), poll_interval=self.poll_interval, deadline=deadline
            ),
            method_name="execute_queued",
        )

    def _poll(
        self, backfill_id: str, deadline: float | None, grace: waiting.NotFoundGrace
    ) -> dict[str, Any]:
        """Wait until the backfill is final and return it."""
        streak = waiting.ErrorStreak(self.max_consecutive_errors)
        while True:
            if waiting.is_past(deadline, time.time()):
                return self._time_out(backfill_id)
            time.sleep(waiting.next_wait(self.poll_interval, deadline, time.time()))
            try:
                backfill = self._check(backfill_id, grace)
            except PostHogError as error:
                if not self.tolerate(streak, error):
                    raise
                continue
            streak.reset()
            if backfill is not None and statuses.is_final(statuses.status_of(backfill)):
                return backfill

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        """Resume after the trigger fired; fails loudly on a missing or unknown event."""
        self._context = context
        event = self.resume(event, "Backfill", {"final"})
        self.backfill_id = str(event.get("backfill_id"))
        self._ours = bool(event.get("ours", self._ours))
        if event["status"] == waiting.TIMEOUT:
            if event.get("reason") == "execution_timeout":
                self._execution_timed_out(context)
                message = f"execution_timeout reached while waiting for backfill {self.backfill_id}"
                if is_last_try(context):
                    raise BatchExportJobFailed(message)
                raise PostHogError(f"{message}; the next try resumes it")
            backfill = self._time_out(self.backfill_id)
        else:
            backfill = event.get("backfill")
            if not isinstance(backfill, dict):
                raise PostHogError(
                    f"Backfill trigger sent a final event without a backfill: {event!r}"
                )
        carry = event.get("carry") if isinstance(event.get("carry"), dict) else {}
        self._completed = [dict(b) for b in carry.get("completed") or [] if isinstance(b, dict)]
        self._finish(backfill)
        pending = [_Claim.from_json(item) for item in carry.get("pending") or []]
        ids = carry.get("ids") or [self.backfill_id]
        deadline = carry.get("deadline")
        return self._wait_all(pending, ids, float(deadline) if deadline is not None else None)

    # ----------------------------------------------------------------------------------------
    # Finish

    def _finish(self, backfill: dict[str, Any]) -> str:
        backfill_id = str(backfill["id"])
        status = statuses.status_of(backfill)
        if status != statuses.COMPLETED:
            self._forget()  # the task fails for good (a retry could not change PostHog's answer)
            errors = self._recent_errors(backfill)
            lines = "".join(f"\n  {line}" for line in errors) or " (no ERROR log lines)"
            raise BatchExportJobFailed(
                f"Backfill {backfill_id} of batch export {self.batch_export_id} ended {status} "
                f"in PostHog ({statuses.describe_backfill(backfill)}). Recent ERROR logs:{lines}"
            )
        failed = self._failed_runs(backfill)
        if failed:
            self._forget()
            raise BatchExportJobFailed(
                f"Backfill {backfill_id} of batch export {self.batch_export_id} is Completed but "
                f"{len(failed)} of its runs did not succeed:{runs.describe_failed_runs(failed)}"
            )
        self.log.info(
            "Backfill %s completed: %s", backfill_id, statuses.describe_backfill(backfill)
        )
        self._completed.append(statuses.summary(backfill))
        return backfill_id

    def _failed_runs(self, backfill: dict[str, Any]) -> list[dict[str, Any]]:
        """Runs of this backfill that ended without succeeding (PostHog still says Completed)."""
        start, end = from_posthog(backfill.get("start_at")), from_posthog(backfill.get("end_at"))
        if start is not None and end is not None:
            filters = runs.failed_run_filters(start, end)
        else:  # an earliest-data backfill has no start: runs created since it began
            created = from_posthog(backfill.get("created_at")) or datetime.now(timezone.utc)
            filters = {"after": (created - timedelta(minutes=5)).isoformat()}
        listed = self.hook.list_runs(self.batch_export_id, **filters)
        return runs.failed_runs_of(listed, str(backfill["id"]))

    def _recent_errors(self, backfill: dict[str, Any]) -> list[str]:
        # "Recent": from an hour before the backfill started, newest first.
        created = from_posthog(backfill.get("created_at")) or datetime.now(timezone.utc)
        try:
            entries = self.hook.get_logs(
                self.batch_export_id,
                after=(created - timedelta(hours=1)).isoformat(),
                level="ERROR",
                limit=10,
            )
        except PostHogError as error:
            return [f"(could not read the logs: {error})"]
        return [f"{entry.get('timestamp')} {entry.get('message')}" for entry in entries]

    def _time_out(self, backfill_id: str) -> dict[str, Any]:
        """``timeout`` passed: the backfill if it just ended (reported as PostHog says), else
        cancel it (if this task started it) and fail."""
        backfill = self._final_or_none(backfill_id)
        if backfill is not None:
            return backfill
        self._forget()
        what = "it was cancelled" if self._cancel_if_ours(backfill_id) else "it was left running"
        raise BatchExportJobFailed(
            f"Backfill {backfill_id} of batch export {self.batch_export_id} did not finish "
            f"within timeout={self.timeout:.0f} s; {what}"
        )

    def _execution_timed_out(self, context: Any) -> None:
        """``execution_timeout`` passed. With retries left the backfill goes on (the next try
        resumes it); on the last try it is cancelled like ``timeout``."""
        self._timed_out = True  # on_kill, which Airflow calls next, must not cancel again
        if self.backfill_id is None:
            return
        if not is_last_try(context):
            self.log.warning(
                "execution_timeout reached; backfill %s goes on and the next try resumes it",
                self.backfill_id,
            )
            return
        if self._final_or_none(self.backfill_id) is None:
            self._cancel_if_ours(self.backfill_id)
        self._forget()

    def _final_or_none(self, backfill_id: str) -> dict[str, Any] | None:
        try:
            backfill = self.hook.get_backfill(self.batch_export_id, backfill_id)
        except PostHogError:
            return None
        return backfill if statuses.is_final(statuses.status_of(backfill)) else None

    def _cancel_if_ours(self, backfill_id: str) -> bool:
        if not self._ours:
            self.log.info(
                "Not cancelling backfill %s: this task adopted it, somebody else started it",
                backfill_id,
            )
            return False
        self._cancel(backfill_id)
        return True

    def _raise_if_past(self, deadline: float | None, what: str) -> None:
        if waiting.is_past(deadline, time.time()):
            raise BatchExportJobFailed(
                f"timeout={self.timeout:.0f} s reached for batch export "
                f"{self.batch_export_id}: {what}"
            )

    def _cancel(self, backfill_id: str) -> None:
        """Cancel the backfill, trying through the 404s of a just-created one."""
        attempts = waiting.CancelAttempts.start(backfill_id, self.not_found_grace, time.monotonic())
        while (
            delay := attempts.after(self._try_cancel(backfill_id), time.monotonic())
        ) is not None:
            time.sleep(delay)
        self.log.log(attempts.level, "%s", attempts.message)

    def _try_cancel(self, backfill_id: str) -> PostHogError | None:
        try:
            self.hook.cancel_backfill(self.batch_export_id, backfill_id)
        except PostHogError as error:
            return error
        return None

    def on_kill(self) -> None:
        """Cancel the backfill this task started when the task is killed."""
        if getattr(self, "_timed_out", False):
            return  # execution_timeout: already handled by _execution_timed_out
        if self.backfill_id and self.cancel_on_kill:
            self._cancel_if_ours(self.backfill_id)
