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
from airflow_provider_posthog_bx.core import waiting
from airflow_provider_posthog_bx.core.logs import (
    LogCursor,
    LogScan,
    LogWatch,
    Step,
    echo_line,
    failure_message,
)
from airflow_provider_posthog_bx.core.time import parse_instant
from airflow_provider_posthog_bx.exceptions import PostHogError

CURSOR_VARIABLE_PREFIX = "posthog_bx_logs_cursor_"


class BatchExportLogsSensor(BatchExportTask, BatchExportSensorRules, BaseSensorOperator):  # type: ignore[misc,unused-ignore]
    """Wait until a batch export logs an entry matching ``search`` and/or ``level`` in PostHog.

    Every new entry is echoed into the task log as ``PostHog <timestamp> <LEVEL>: <message>``.
    Returns the matching entry (``timestamp``, ``level``, ``message``, ``instance_id``,
    ``log_source_id``). With ``fail_on_error``, an ERROR or CRITICAL entry that appears first
    fails the task with its message; with ``level="ERROR"`` an error entry matching ``search``
    is what is waited for, not a failure. ``soft_fail`` turns a timeout or such a failure into
    a skip, as for every Airflow sensor.

    Each poke reads only entries after the newest one already read, paging through as many as
    arrived. In ``reschedule`` mode that position is kept between pokes in an Airflow Variable
    ``posthog_bx_logs_cursor_<hash>`` (deleted when the sensor finishes), because Airflow
    clears a task's XComs at every reschedule. In deferrable mode it travels with the trigger.

    :param batch_export_id: the batch export whose logs to watch (templated).
    :param search: case-insensitive substring of the message to wait for (templated); None
        matches any message.
    :param level: the level to wait for, one of DEBUG, LOG, INFO, WARNING (or WARN), ERROR,
        CRITICAL, case-insensitive (templated); None matches any level.
    :param after: only entries strictly newer than this count: an aware datetime or an ISO
        string with an offset (templated, e.g. ``"{{ data_interval_end }}"``). When omitted,
        entries logged from the moment the sensor first runs count.
    :param fail_on_error: fail as soon as an ERROR/CRITICAL entry appears before a match.
    :param deferrable: wait in the triggerer instead of a worker slot. Defaults to Airflow's
        ``[operators] default_deferrable``.
    :param progress_interval: in deferrable mode, least seconds between two returns of the
        task to a worker to echo non-matching entries (also after 200 of them). Defaults to
        ``max(poke_interval, 60)``.
    :param max_consecutive_errors: transient API errors in a row tolerated while waiting, in
        every mode (in reschedule mode, within one poke's worker run).
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
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.progress_interval = progress_interval
        self.max_consecutive_errors = max_consecutive_errors
        self._streak = waiting.ErrorStreak(max_consecutive_errors)
        self._cursor: LogCursor | None = None
        self._stored: LogCursor | None = None

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

    def poke(self, context: Any) -> bool | PokeReturnValue:
        cursor = self._cursor
        if cursor is None:
            cursor = self._load_cursor(context) or self._first_cursor()
        try:
            step = self._read(cursor, self._watch())
        except PostHogError as error:
            if not self.tolerate(self._streak, error):
                raise
            return False
        self._streak.reset()
        self._cursor = step.cursor
        if step.outcome is None:
            if self.reschedule and step.cursor != self._stored:
                self._save_cursor(context, step.cursor)
            return False
        if self.reschedule:
            self._forget_cursor(context)
        return PokeReturnValue(is_done=True, xcom_value=self._decide(step.outcome, step.entry))

    def _read(self, cursor: LogCursor, watch: LogWatch) -> Step:
        """Read and echo every entry after ``cursor`` until one decides the wait."""
        while True:
            scan = LogScan(cursor)
            while (query := scan.next_query()) is not None:
                scan.feed(
                    self.hook.get_logs(
                        self.batch_export_id,
                        after=query.after,
                        before=query.before,
                        limit=query.limit,
                    )
                )
            for warning in scan.warnings:
                self.log.warning("%s", warning)
            step = scan.step(watch)
            self._echo(step.processed)
            if step.outcome is not None or not scan.truncated:
                return step
            cursor = step.cursor  # more arrived than one scan keeps: read on

    def _echo(self, entries: Sequence[dict[str, Any]]) -> None:
        for entry in entries:
            self.log.info("%s", echo_line(entry))

    # The cursor of reschedule mode lives in an Airflow Variable: XComs are cleared at every
    # reschedule on both Airflow lines, and nothing else survives between two pokes.

    def _variable_key(self, context: Any) -> str:
        ti = context["ti"]
        ident = "\x1f".join(str(part) for part in (ti.dag_id, ti.task_id, ti.run_id, ti.map_index))
        return CURSOR_VARIABLE_PREFIX + hashlib.sha256(ident.encode()).hexdigest()[:32]

    def _load_cursor(self, context: Any) -> LogCursor | None:
        if not self.reschedule:
            return None
        stored = variable_class().get(self._variable_key(context), None, deserialize_json=True)
        if stored is None:
            return None
        try:
            self._stored = LogCursor.from_json(
                stored.get("cursor") if isinstance(stored, dict) else None
            )
        except ValueError as error:
            self.log.warning("Ignoring an unreadable stored log cursor: %s", error)
            return None
        return self._stored

    def _save_cursor(self, context: Any, cursor: LogCursor) -> None:
        ti = context["ti"]
        value = {
            "cursor": cursor.to_json(),
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "map_index": ti.map_index,
        }
        variable_class().set(
            self._variable_key(context),
            value,
            description="Where a BatchExportLogsSensor in reschedule mode got to in PostHog's "
            "logs; deleted when the sensor finishes.",
            serialize_json=True,
        )
        self._stored = cursor

    def _forget_cursor(self, context: Any) -> None:
        try:
            variable_class().delete(self._variable_key(context))
        except Exception as error:  # a leftover Variable is harmless; don't fail the task
            self.log.warning("Could not delete the stored log cursor: %s", error)

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
            progress = max(float(self.poke_interval), 60.0)
        self.defer(
            trigger=BatchExportLogsTrigger(
                **self.trigger_args(),
                cursor=cursor.to_json(),
                search=watch.search,
                level=watch.level,
                fail_on_error=watch.fail_on_error,
                poll_interval=float(self.poke_interval),
                progress_interval=float(progress),
                deadline=deadline,
                max_consecutive_errors=self.max_consecutive_errors,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=remaining),
        )

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        """Resume after the trigger fired: echo its entries, then finish or wait again."""
        from airflow_provider_posthog_bx.triggers.logs import EVENT_STATUSES

        event = self.resume(event, "Logs", EVENT_STATUSES)
        status = event["status"]
        entries = event.get("entries")
        if not isinstance(entries, list):
            raise PostHogError(f"Logs trigger sent an event without entries: {event!r}")
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
        self.log.info("Read %d new PostHog log entries; still waiting", len(entries))
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
