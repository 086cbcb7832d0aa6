"""BatchExportBackfillOperator: backfill a date range of a batch export and wait for it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_posthog_bx._task import BatchExportTask, default_deferrable
from airflow_provider_posthog_bx.core import runs, statuses, waiting
from airflow_provider_posthog_bx.core.bounds import format_bounds, interval_adjective
from airflow_provider_posthog_bx.core.time import from_posthog
from airflow_provider_posthog_bx.exceptions import (
    BatchExportJobFailed,
    PostHogAmbiguousRequestError,
    PostHogConcurrencyLimitError,
    PostHogError,
    PostHogInputError,
)

if TYPE_CHECKING:
    from airflow_provider_posthog_bx.core.bounds import BackfillBounds


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


class BatchExportBackfillOperator(BatchExportTask):
    """Backfill ``[start_at, end_at)`` of a PostHog batch export and (by default) wait for it.

    Returns the backfill id. A retry adopts a Starting/Running backfill of the same range
    instead of starting a second one; the team's concurrent-backfill cap is waited out, not
    failed on; ``timeout`` and a killed task cancel the backfill.

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        self.backfill_id: str | None = None

    # ----------------------------------------------------------------------------------------
    # Start

    def execute(self, context: Any) -> str:
        return self._start(context, waiting.deadline_after(self.timeout, time.time()))

    def execute_queued(self, context: Any, event: Any = None) -> str:
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

    def _start(self, context: Any, deadline: float | None) -> str:
        url = self.push_link(context)
        export = self.hook.get_batch_export(self.batch_export_id)
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
        backfill_id = self._adopt(bounds) or self._create(bounds, deadline)
        self.backfill_id = backfill_id
        context["ti"].xcom_push(key="backfill_id", value=backfill_id)
        if not self.wait_for_completion:
            return backfill_id
        grace = waiting.NotFoundGrace(time.time() + self.not_found_grace)
        backfill = self._check(backfill_id, grace)
        if backfill is not None and statuses.is_final(statuses.status_of(backfill)):
            return self._finish(backfill)
        if self.deferrable:
            self._defer(backfill_id, deadline, grace)
        return self._poll(backfill_id, deadline, grace)

    def _matching(self, bounds: BackfillBounds) -> dict[str, Any] | None:
        """An in-flight backfill of this export over exactly this range, if any."""
        # Newest first; in-flight backfills are recent, so two pages (100) are plenty.
        for backfill in self.hook.list_backfills(self.batch_export_id, max_pages=2):
            if statuses.status_of(backfill) not in statuses.IN_FLIGHT:
                continue
            if (
                from_posthog(backfill.get("start_at")) == bounds.start
                and from_posthog(backfill.get("end_at")) == bounds.end
            ):
                return backfill
        return None

    def _adopt(self, bounds: BackfillBounds) -> str | None:
        existing = self._matching(bounds)
        if existing is None:
            return None
        self.log.info(
            "Adopting backfill %s, already %s for the same range, instead of starting another",
            existing["id"],
            existing.get("status"),
        )
        return str(existing["id"])

    def _create(self, bounds: BackfillBounds, deadline: float | None) -> str:
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
                adopted = self._await_adoptable(bounds)
                if adopted is not None:
                    return adopted
                self.log.info("No backfill of this range appeared; creating it again")
                continue
            self.log.info("Started backfill %s", backfill_id)
            return backfill_id

    def _await_adoptable(self, bounds: BackfillBounds) -> str | None:
        """Look for a backfill that an ambiguous create may have started, for as long as
        PostHog may take to make it visible."""
        give_up = time.monotonic() + self.not_found_grace
        while True:
            adopted = self._adopt(bounds)
            if adopted is not None or time.monotonic() >= give_up:
                return adopted
            time.sleep(min(self.poll_interval, 5.0, max(0.0, give_up - time.monotonic())))

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
        self.log.info("Backfill %s: %s", backfill_id, statuses.describe_backfill(backfill))
        return backfill

    def _defer(
        self, backfill_id: str, deadline: float | None, grace: waiting.NotFoundGrace
    ) -> None:
        from airflow_provider_posthog_bx.triggers.backfill import BatchExportBackfillTrigger

        self.defer(
            trigger=BatchExportBackfillTrigger(
                **self.trigger_args(),
                backfill_id=backfill_id,
                poll_interval=self.poll_interval,
                deadline=deadline,
                not_found_until=grace.until,
                not_found_grace=self.not_found_grace,
                max_consecutive_errors=self.max_consecutive_errors,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
        )

    def _defer_queued(self, deadline: float | None) -> None:
        from airflow_provider_posthog_bx.triggers.backfill import BackfillSlotWaitTrigger

        self.defer(
            trigger=BackfillSlotWaitTrigger(
                **self.trigger_args(), poll_interval=self.poll_interval, deadline=deadline
            ),
            method_name="execute_queued",
        )

    def _poll(self, backfill_id: str, deadline: float | None, grace: waiting.NotFoundGrace) -> str:
        streak = waiting.ErrorStreak(self.max_consecutive_errors)
        while True:
            if waiting.is_past(deadline, time.time()):
                self._time_out(backfill_id)
            time.sleep(waiting.next_wait(self.poll_interval, deadline, time.time()))
            try:
                backfill = self._check(backfill_id, grace)
            except PostHogError as error:
                if not streak.record(error):
                    raise
                self.log.warning("%s", streak.warning(error))
                continue
            streak.reset()
            if backfill is not None and statuses.is_final(statuses.status_of(backfill)):
                return self._finish(backfill)

    def execute_complete(self, context: Any, event: Any = None) -> str:
        """Resume after the trigger fired; fails loudly on a missing or unknown event."""
        event = self.resume(event, "Backfill", {"final"})
        self.backfill_id = str(event.get("backfill_id"))
        if event["status"] == waiting.TIMEOUT:
            self._time_out(self.backfill_id)
        backfill = event.get("backfill")
        if not isinstance(backfill, dict):
            raise PostHogError(f"Backfill trigger sent a final event without a backfill: {event!r}")
        return self._finish(backfill)

    # ----------------------------------------------------------------------------------------
    # Finish

    def _finish(self, backfill: dict[str, Any]) -> str:
        backfill_id = str(backfill["id"])
        status = statuses.status_of(backfill)
        if status != statuses.COMPLETED:
            errors = self._recent_errors(backfill)
            lines = "".join(f"\n  {line}" for line in errors) or " (no ERROR log lines)"
            raise BatchExportJobFailed(
                f"Backfill {backfill_id} of batch export {self.batch_export_id} ended {status} "
                f"in PostHog ({statuses.describe_backfill(backfill)}). Recent ERROR logs:{lines}"
            )
        failed = self._failed_runs(backfill)
        if failed:
            raise BatchExportJobFailed(
                f"Backfill {backfill_id} of batch export {self.batch_export_id} is Completed but "
                f"{len(failed)} of its runs did not succeed:{runs.describe_failed_runs(failed)}"
            )
        self.log.info(
            "Backfill %s completed: %s", backfill_id, statuses.describe_backfill(backfill)
        )
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

    def _time_out(self, backfill_id: str) -> None:
        self._cancel(backfill_id)
        raise BatchExportJobFailed(
            f"Backfill {backfill_id} of batch export {self.batch_export_id} did not finish "
            f"within timeout={self.timeout:.0f} s; it was cancelled"
        )

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
        """Cancel the backfill this task is waiting on when the task is killed."""
        if self.backfill_id and self.cancel_on_kill:
            self._cancel(self.backfill_id)
