"""BatchExportBackfillOperator: backfill a date range of a batch export and wait for it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_posthog_bx import api
from airflow_provider_posthog_bx._compat import AirflowException, BaseOperator, conf
from airflow_provider_posthog_bx.exceptions import PostHogInputError
from airflow_provider_posthog_bx.links.batch_export import BatchExportLink
from airflow_provider_posthog_bx.operators.base import BatchExportTaskMixin

if TYPE_CHECKING:
    from airflow_provider_posthog_bx.backfill_bounds import BackfillBounds


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


class BatchExportBackfillOperator(BatchExportTaskMixin, BaseOperator):
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

    template_fields: Sequence[str] = ("batch_export_id", "project_id", "start_at", "end_at")
    operator_extra_links = (BatchExportLink(),)
    ui_color = "#f9bd2b"

    def __init__(
        self,
        *,
        batch_export_id: str,
        start_at: Any,
        end_at: Any,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | timedelta = 30,
        timeout: float | timedelta | None = None,
        not_found_grace: float = 120,
        max_consecutive_errors: int = 5,
        cancel_on_kill: bool = True,
        posthog_conn_id: str = "posthog_default",
        project_id: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_export_id = batch_export_id
        self.start_at = start_at
        self.end_at = end_at
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
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
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id
        self.backfill_id: str | None = None

    # ----------------------------------------------------------------------------------------
    # Start

    def execute(self, context: Any) -> str:
        deadline = None if self.timeout is None else time.time() + self.timeout
        return self._start(context, deadline)

    def execute_queued(self, context: Any, event: Any = None) -> str:
        """Resume after waiting (deferred) for a free backfill slot: try to start again."""
        from airflow_provider_posthog_bx.exceptions import BatchExportJobFailed

        status = event.get("status") if isinstance(event, dict) else None
        if status == "timeout":
            raise BatchExportJobFailed(
                f"timeout={self.timeout:.0f} s reached for batch export {self.batch_export_id} "
                "while queued for a backfill slot (PostHog's per-team cap on running backfills)"
            )
        if not isinstance(event, dict) or status != "slot_wait_over":
            raise AirflowException(f"Backfill queue trigger sent no usable event: {event!r}")
        self.log.info("Waited for a free backfill slot in the triggerer; trying again")
        deadline = event.get("deadline")
        return self._start(context, float(deadline) if deadline is not None else None)

    def _start(self, context: Any, deadline: float | None) -> str:
        from airflow_provider_posthog_bx.backfill_bounds import format_bounds

        url = self.push_link(context)
        export = self.hook.get_batch_export(self.batch_export_id)
        bounds = format_bounds(export, self.start_at, self.end_at)
        self.log.info(
            "Backfilling %s batch export %r (%s) from %s to %s: %s",
            export.get("interval"),
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
        not_found_until = time.time() + self.not_found_grace
        backfill = self._check(backfill_id, not_found_until)
        if backfill is not None and _is_final(backfill):
            return self._finish(backfill)
        if self.deferrable:
            self._defer(backfill_id, deadline, not_found_until)
        return self._poll(backfill_id, deadline, not_found_until)

    def _matching(self, bounds: BackfillBounds) -> dict[str, Any] | None:
        """An in-flight backfill of this export over exactly this range, if any."""
        # Newest first; in-flight backfills are recent, so two pages (100) are plenty.
        for backfill in self.hook.list_backfills(self.batch_export_id, max_pages=2):
            if backfill.get("status") not in api.IN_FLIGHT_STATUSES:
                continue
            if (
                api.parse_datetime(backfill.get("start_at")) == bounds.start
                and api.parse_datetime(backfill.get("end_at")) == bounds.end
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
        from airflow_provider_posthog_bx.exceptions import (
            PostHogAmbiguousRequestError,
            PostHogConcurrencyLimitError,
        )

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

    def _check(self, backfill_id: str, not_found_until: float) -> dict[str, Any] | None:
        """The backfill, or None while PostHog has not made it visible yet."""
        from airflow_provider_posthog_bx.exceptions import PostHogNotFoundError

        try:
            backfill = self.hook.get_backfill(self.batch_export_id, backfill_id)
        except PostHogNotFoundError:
            if time.time() >= not_found_until:
                raise
            self.log.info("Backfill %s is not visible in PostHog yet", backfill_id)
            return None
        self.log.info("Backfill %s: %s", backfill_id, api.describe_backfill(backfill))
        return backfill

    def _defer(self, backfill_id: str, deadline: float | None, not_found_until: float) -> None:
        from airflow_provider_posthog_bx.triggers.backfill import BatchExportBackfillTrigger

        self.defer(
            trigger=BatchExportBackfillTrigger(
                posthog_conn_id=self.posthog_conn_id,
                project_id=self.hook.project(),
                batch_export_id=self.batch_export_id,
                backfill_id=backfill_id,
                poll_interval=self.poll_interval,
                deadline=deadline,
                not_found_until=not_found_until,
                max_consecutive_errors=self.max_consecutive_errors,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
        )

    def _defer_queued(self, deadline: float | None) -> None:
        from airflow_provider_posthog_bx.triggers.backfill import BackfillSlotWaitTrigger

        self.defer(
            trigger=BackfillSlotWaitTrigger(
                posthog_conn_id=self.posthog_conn_id,
                project_id=self.hook.project(),
                batch_export_id=self.batch_export_id,
                poll_interval=self.poll_interval,
                deadline=deadline,
            ),
            method_name="execute_queued",
        )

    def _poll(self, backfill_id: str, deadline: float | None, not_found_until: float) -> str:
        from airflow_provider_posthog_bx.triggers.base import TRANSIENT_ERRORS

        errors = 0
        while True:
            if deadline is not None and time.time() >= deadline:
                self._time_out(backfill_id)
            wait = self.poll_interval
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.time()))
            time.sleep(wait)
            try:
                backfill = self._check(backfill_id, not_found_until)
            except TRANSIENT_ERRORS as error:
                errors += 1
                if errors > self.max_consecutive_errors:
                    raise
                self.log.warning(
                    "PostHog error while waiting (%d of %d tolerated in a row): %s",
                    errors,
                    self.max_consecutive_errors,
                    error,
                )
                continue
            errors = 0
            if backfill is not None and _is_final(backfill):
                return self._finish(backfill)

    def execute_complete(self, context: Any, event: Any = None) -> str:
        """Resume after the trigger fired; fails loudly on a missing or unknown event."""
        from airflow_provider_posthog_bx.exceptions import BatchExportJobFailed, PostHogError

        if not isinstance(event, dict) or "status" not in event:
            raise AirflowException(f"Backfill trigger sent no usable event: {event!r}")
        self.backfill_id = str(event.get("backfill_id") or (event.get("backfill") or {}).get("id"))
        status = event["status"]
        if status == "final" and isinstance(event.get("backfill"), dict):
            return self._finish(event["backfill"])
        if status == "timeout":
            self._time_out(self.backfill_id)
        if status == "error":
            message = str(event.get("message"))
            if event.get("retryable"):
                raise PostHogError(message)
            raise BatchExportJobFailed(message)
        raise AirflowException(f"Backfill trigger sent an unknown event: {event!r}")

    # ----------------------------------------------------------------------------------------
    # Finish

    def _finish(self, backfill: dict[str, Any]) -> str:
        from airflow_provider_posthog_bx.exceptions import BatchExportJobFailed

        backfill_id = str(backfill["id"])
        status = backfill.get("status")
        if status != api.COMPLETED:
            errors = self._recent_errors(backfill)
            lines = "".join(f"\n  {line}" for line in errors) or " (no ERROR log lines)"
            raise BatchExportJobFailed(
                f"Backfill {backfill_id} of batch export {self.batch_export_id} ended {status} "
                f"in PostHog ({api.describe_backfill(backfill)}). Recent ERROR logs:{lines}"
            )
        failed = self._failed_runs(backfill)
        if failed:
            details = "".join(
                f"\n  {run.get('data_interval_start')} - {run.get('data_interval_end')}: "
                f"{run.get('status')}: {run.get('latest_error') or 'no error message'}"
                for run in failed
            )
            raise BatchExportJobFailed(
                f"Backfill {backfill_id} of batch export {self.batch_export_id} is Completed but "
                f"{len(failed)} of its runs did not succeed:{details}"
            )
        self.log.info("Backfill %s completed: %s", backfill_id, api.describe_backfill(backfill))
        return backfill_id

    def _failed_runs(self, backfill: dict[str, Any]) -> list[dict[str, Any]]:
        """Runs of this backfill that ended without succeeding (PostHog still says Completed)."""
        created = api.parse_datetime(backfill.get("created_at")) or datetime.now(timezone.utc)
        runs = self.hook.list_runs(
            self.batch_export_id, after=(created - timedelta(minutes=5)).isoformat()
        )
        return [
            run
            for run in runs
            if run.get("backfill") == backfill["id"]
            and api.is_final(str(run.get("status")))
            and run.get("status") != api.COMPLETED
        ]

    def _recent_errors(self, backfill: dict[str, Any]) -> list[str]:
        from airflow_provider_posthog_bx.exceptions import PostHogError

        # "Recent": from an hour before the backfill started, newest first.
        created = api.parse_datetime(backfill.get("created_at")) or datetime.now(timezone.utc)
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
        from airflow_provider_posthog_bx.exceptions import BatchExportJobFailed

        self._cancel(backfill_id)
        raise BatchExportJobFailed(
            f"Backfill {backfill_id} of batch export {self.batch_export_id} did not finish "
            f"within timeout={self.timeout:.0f} s; it was cancelled"
        )

    def _raise_if_past(self, deadline: float | None, what: str) -> None:
        from airflow_provider_posthog_bx.exceptions import BatchExportJobFailed

        if deadline is not None and time.time() >= deadline:
            raise BatchExportJobFailed(
                f"timeout={self.timeout:.0f} s reached for batch export "
                f"{self.batch_export_id}: {what}"
            )

    def _cancel(self, backfill_id: str) -> None:
        """Cancel the backfill; a just-created one 404s for a while, so keep trying briefly."""
        from airflow_provider_posthog_bx.exceptions import PostHogError, PostHogNotFoundError

        give_up = time.monotonic() + min(self.not_found_grace, api.CANCEL_NOT_FOUND_SECONDS)
        while True:
            try:
                self.hook.cancel_backfill(self.batch_export_id, backfill_id)
            except PostHogNotFoundError as error:
                if time.monotonic() < give_up:
                    time.sleep(1.0)
                    continue
                self.log.warning("Could not cancel backfill %s: %s", backfill_id, error)
            except PostHogError as error:
                self.log.warning("Could not cancel backfill %s: %s", backfill_id, error)
            else:
                self.log.info("Cancelled backfill %s in PostHog", backfill_id)
            return

    def on_kill(self) -> None:
        """Cancel the backfill this task is waiting on when the task is killed."""
        if self.backfill_id and self.cancel_on_kill:
            self._cancel(self.backfill_id)


def _is_final(backfill: dict[str, Any]) -> bool:
    return api.is_final(str(backfill.get("status")))
