"""BatchExportLogsSensor: wait for a line in a batch export's PostHog logs."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

from airflow_provider_posthog_bx._compat import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    variable_class,
)
from airflow_provider_posthog_bx._task import (
    BatchExportSensorRules,
    BatchExportTask,
    default_deferrable,
)
from airflow_provider_posthog_bx._task_state import TaskRecord, is_last_try
from airflow_provider_posthog_bx.core import waiting
from airflow_provider_posthog_bx.core.logs import (
    DEFAULT_LOOK_BACK,
    LogCursor,
    LogScan,
    LogWatch,
    Step,
    echo_line,
    failure_message,
    parse_look_back,
)
from airflow_provider_posthog_bx.core.time import parse_instant
from airflow_provider_posthog_bx.exceptions import PostHogError

RECORD_NAME = "logs_cursor"
LEGACY_VARIABLE_PREFIX = "posthog_bx_logs_cursor_"  # 0.2 and before: another hash of the TI
DEFAULT_PROGRESS_INTERVAL = 1800.0


class BatchExportLogsSensor(BatchExportTask, BatchExportSensorRules, BaseSensorOperator):  # type: ignore[misc,unused-ignore]
    """Wait until a batch export logs an entry matching ``search`` and/or ``level`` in PostHog.

    Every new entry is echoed once as ``PostHog <timestamp> <LEVEL>: <message>``. Returns the
    matching entry (``timestamp``, ``level``, ``message``, ``instance_id``,
    ``log_source_id``). With ``fail_on_error``, an ERROR or CRITICAL entry that appears first
    fails the task with its message; with ``level="ERROR"`` an error entry matching ``search``
    is what is waited for, not a failure. ``soft_fail`` turns a timeout or such a failure into
    a skip, as for every Airflow sensor.

    PostHog ingests logs asynchronously, so an entry may become visible after newer ones: each
    read starts ``look_back`` before the newest entry already processed and skips what it
    processed (at most the newest 1,000 entries of that window are remembered; a busier window
    is narrowed to them). A backlog is read oldest first, in about one request per 500 entries.

    Where the echoed lines appear: in poke and reschedule modes, in the task log of the try (of
    the poke) that read them. In deferrable mode, the entries read before deferring are in the
    worker's part of the task log, and the trigger echoes the rest itself: Airflow 3 shows
    trigger lines in the task's log; Airflow 2.10 shows them there only when the triggerer runs
    with its task log handler (otherwise they are in the triggerer's own log). Only the deciding
    entry returns to a worker, plus, when entries were read, a small checkpoint every
    ``progress_interval`` (a restarted triggerer echoes again what it read since the last one).

    Where reschedule mode keeps its cursor between pokes (Airflow clears a task's XComs at
    every reschedule): a durable record of the task instance (see ``_task_state``), in the task
    state store on Airflow 3.3+ and in an Airflow Variable ``posthog_bx_logs_cursor_<hash>``
    before. There is one per task instance: a retry or a later clear overwrites it (a clear
    starts reading afresh) and it is deleted when the sensor succeeds, times out, is skipped,
    fails on its last try, or is killed (``on_kill``; the next try, if any, starts again from
    ``after``). A task instance marked failed or success while waiting for its next poke runs
    no code: its record stays until that task instance runs again, is deleted by hand, or (task
    state store) expires.

    :param batch_export_id: the batch export whose logs to watch (templated).
    :param search: case-insensitive substring of the message to wait for (templated); None
        matches any message.
    :param level: the level to wait for, one of DEBUG, LOG, INFO, WARNING (or WARN), ERROR,
        CRITICAL, case-insensitive (templated); None matches any level.
    :param after: only entries strictly newer than this count: an aware datetime or an ISO
        string with an offset (templated, e.g. ``"{{ data_interval_end }}"``). When omitted,
        entries logged from the moment the sensor first runs count.
    :param fail_on_error: fail as soon as an ERROR/CRITICAL entry appears before a match.
    :param look_back: how long after a newer entry a late-visible entry is still found: seconds
        or a timedelta, 0 to 1 day; default 5 minutes. Each read asks again for this window.
    :param deferrable: wait in the triggerer instead of a worker slot. Defaults to Airflow's
        ``[operators] default_deferrable``.
    :param progress_interval: in deferrable mode, least seconds between two returns of the
        task to a worker to checkpoint where the trigger got to (only when it read new
        entries). Defaults to 1,800 (30 minutes).
    :param max_consecutive_errors: transient API errors in a row tolerated while waiting, in
        every mode (in reschedule mode counted across pokes, in the task's durable record).
    :param posthog_conn_id: the Airflow connection to PostHog.
    :param project_id: the PostHog project id (templated); defaults to the connection's.
    """

    template_fields: Sequence[str] = (*BatchExportTask.template_fields, "search", "level", "after")

    def __init__(
        self,
        *,
        search: str | None = None,
        level: str | None = None,
        after: datetime | str | None = None,
        fail_on_error: bool = True,
        look_back: float | timedelta = DEFAULT_LOOK_BACK,
        deferrable: bool | None = None,
        progress_interval: float | None = None,
        max_consecutive_errors: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.search = search
        self.level = level
        self.after = after
        self.fail_on_error = fail_on_error
        self.look_back = parse_look_back(look_back)
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.progress_interval = progress_interval
        self.max_consecutive_errors = max_consecutive_errors
        self._streak = waiting.ErrorStreak(max_consecutive_errors)
        self._cursor: LogCursor | None = None
        self._stored: LogCursor | None = None
        self._context: Any = None

    # ----------------------------------------------------------------------------------------
    # Arguments

    def _watch(self) -> LogWatch:
        return LogWatch.from_args(self.search, self.level, self.fail_on_error)

    def _first_cursor(self) -> LogCursor:
        """Where reading starts: just after ``after``, or now."""
        if self.after is None or (isinstance(self.after, str) and not self.after.strip()):
            return LogCursor.starting_at(datetime.now(timezone.utc))
        return LogCursor.newer_than(parse_instant("after", self.after))

    # ----------------------------------------------------------------------------------------
    # Poke and reschedule modes

    def execute(self, context: Any) -> Any:
        self._watch()  # a bad level or after fails here, before any request
        first = self._first_cursor()
        self._context = context
        self.push_link(context)
        if self.deferrable:
            return self._execute_deferrable(context, first)
        if not self.reschedule:
            self._cursor = first
            return super().execute(context)
        try:
            return super().execute(context)
        except (AirflowSensorTimeout, AirflowSkipException):
            self._forget_cursor(context)
            raise
        except Exception as error:
            # AirflowRescheduleException is how a poke that found nothing ends: keep the
            # cursor. Any other failure keeps it for a retry, and forgets it on the last try.
            if type(error).__name__ != "AirflowRescheduleException" and is_last_try(context):
                self._forget_cursor(context)
            raise

    def on_kill(self) -> None:
        """Forget reschedule mode's stored cursor: a killed sensor leaves nothing behind."""
        if self.reschedule and not self.deferrable and self._context is not None:
            self._forget_cursor(self._context)

    def poke(self, context: Any) -> bool | PokeReturnValue:
        self._context = context
        cursor = self._cursor
        if cursor is None:
            cursor = self._load_cursor(context) or self._first_cursor()
        try:
            step = self._read(cursor, self._watch())
        except PostHogError as error:
            self._keep_cursor(context)  # what was echoed before the error stays echoed
            if not self.poke_failed(context, error):
                raise
            return False
        self.poke_succeeded(context)
        if step.outcome is None:
            self._keep_cursor(context)
            return False
        if self.reschedule:
            self._forget_cursor(context)
        return PokeReturnValue(is_done=True, xcom_value=self._decide(step.outcome, step.entry))

    def _read(self, cursor: LogCursor, watch: LogWatch) -> Step:
        """Read and echo every entry after ``cursor`` until one decides the wait; keeps
        ``self._cursor`` at what was echoed, even when a request fails midway."""
        scan = LogScan(cursor, watch, self.look_back)
        step = Step([], cursor)
        try:
            while (query := scan.next_query()) is not None:
                step = scan.feed(
                    self.hook.get_logs(
                        self.batch_export_id,
                        after=query.after,
                        before=query.before,
                        limit=query.limit,
                    )
                )
                self._echo(step.processed)
                if step.outcome is not None:
                    break
        finally:
            self._cursor = scan.cursor
            for warning in scan.warnings:
                self.log.warning("%s", warning)
        return step

    def _echo(self, entries: Sequence[dict[str, Any]]) -> None:
        for entry in entries:
            self.log.info("%s", echo_line(entry))

    # The cursor of reschedule mode is a durable record of the task instance: XComs are
    # cleared at every reschedule on both Airflow lines, and nothing else survives two pokes.

    def _load_cursor(self, context: Any) -> LogCursor | None:
        if not self.reschedule:
            return None
        try:
            stored = TaskRecord.for_context(context, RECORD_NAME).get()
            if stored is not None:
                self._stored = LogCursor.from_json(stored.get("cursor"))
                return self._stored
            legacy = self._legacy_cursor(context)
            # Not _stored: this poke saves it in the record, whatever it reads.
            return LogCursor.from_json(legacy.get("cursor")) if legacy else None
        except ValueError as error:
            self.log.warning("Ignoring an unreadable stored log cursor: %s", error)
            return None

    def _keep_cursor(self, context: Any) -> None:
        """Save where this poke got to, for the next one (reschedule mode)."""
        if self.reschedule and self._cursor is not None and self._cursor != self._stored:
            self._save_cursor(context, self._cursor)

    def _save_cursor(self, context: Any, cursor: LogCursor) -> None:
        TaskRecord.for_context(context, RECORD_NAME).set({"cursor": cursor.to_json()})
        self._stored = cursor

    def _forget_cursor(self, context: Any) -> None:
        TaskRecord.for_context(context, RECORD_NAME).delete()
        self._stored = None

    @staticmethod
    def _legacy_key(context: Any) -> str:
        ti = context["ti"]
        ident = "\x1f".join(str(part) for part in (ti.dag_id, ti.task_id, ti.run_id, ti.map_index))
        return LEGACY_VARIABLE_PREFIX + hashlib.sha256(ident.encode()).hexdigest()[:32]

    def _legacy_cursor(self, context: Any) -> dict[str, Any] | None:
        """The Variable 0.2 kept the cursor in, read once after an upgrade (then replaced)."""
        key = self._legacy_key(context)
        stored = variable_class().get(key, None, deserialize_json=True)
        if not isinstance(stored, dict):
            return None
        try:
            variable_class().delete(key)
        except Exception as error:  # a leftover Variable is harmless; don't fail the task
            self.log.warning("Could not delete the 0.2 stored log cursor %s: %s", key, error)
        return stored

    # ----------------------------------------------------------------------------------------
    # Deferrable mode

    def _execute_deferrable(self, context: Any, first: LogCursor) -> Any:
        deadline = time.time() + float(self.timeout)
        step = self._read(first, self._watch())
        if step.outcome is not None:
            return self._decide(step.outcome, step.entry)
        self._defer(step.cursor, deadline)

    def _defer(self, cursor: LogCursor, deadline: float) -> None:
        from airflow_provider_posthog_bx.triggers.logs import BatchExportLogsTrigger

        remaining = deadline - time.time()
        if remaining <= 0:
            self._time_out()
        watch = self._watch()
        progress = self.progress_interval
        if progress is None:
            progress = DEFAULT_PROGRESS_INTERVAL
        self.defer(
            trigger=BatchExportLogsTrigger(
                **self.trigger_args(),
                cursor=cursor.to_json(),
                search=watch.search,
                level=watch.level,
                fail_on_error=watch.fail_on_error,
                look_back=self.look_back.total_seconds(),
                poll_interval=float(self.poke_interval),
                progress_interval=float(progress),
                deadline=deadline,
                max_consecutive_errors=self.max_consecutive_errors,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=remaining),
        )

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        """Resume after the trigger fired (it echoed what it read): finish or wait again."""
        from airflow_provider_posthog_bx.triggers.logs import EVENT_STATUSES

        event = self.resume(event, "Logs", EVENT_STATUSES)
        status = event["status"]
        entries = event.get("entries")
        if entries is not None:
            # A trigger deferred by 0.2 sends the entries it read for the worker to echo.
            if not isinstance(entries, list):
                raise PostHogError(f"Logs trigger sent unreadable entries: {event!r}")
            self._echo(entries)
        if status == waiting.TIMEOUT:
            self._time_out()
        if status in ("match", "error_entry"):
            if not isinstance(event.get("entry"), dict):
                raise PostHogError(f"Logs trigger sent no entry: {event!r}")
            return self._decide("match" if status == "match" else "error", event["entry"])
        # progress: wait again from where the trigger got to, within the first deadline
        try:
            cursor = LogCursor.from_json(event.get("cursor"))
            deadline = float(event["deadline"])
        except (KeyError, TypeError, ValueError) as error:
            raise PostHogError(f"Logs trigger sent an unusable progress event: {error}") from None
        read = event.get("read", len(entries or []))
        self.log.info("The trigger read and echoed %s new PostHog log entries; still waiting", read)
        self._defer(cursor, deadline)
        return None

    def _decide(self, outcome: str, entry: dict[str, Any] | None) -> dict[str, Any]:
        assert entry is not None
        if outcome == "error":
            self.fail(failure_message(entry, self.batch_export_id))
        self.log.info("Found the log entry waited for: %s", entry.get("message"))
        return entry

    def _time_out(self) -> NoReturn:
        self.time_out(
            f"No matching log entry of batch export {self.batch_export_id} within "
            f"timeout={float(self.timeout):.0f} s"
        )
