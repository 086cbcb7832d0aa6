"""BatchExportLogsTrigger: reads a batch export's new PostHog log entries in the triggerer."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow_provider_posthog_bx.core.logs import (
    DEFAULT_LOOK_BACK,
    LogCursor,
    LogScan,
    LogWatch,
    Step,
    echo_line,
    parse_look_back,
)
from airflow_provider_posthog_bx.triggers.base import PollingTrigger

if TYPE_CHECKING:
    from airflow_provider_posthog_bx._compat import TriggerEvent
    from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

EVENT_STATUSES = frozenset({"match", "error_entry", "progress"})
DEFAULT_PROGRESS_INTERVAL = 1800.0


class BatchExportLogsTrigger(PollingTrigger):
    """Read new log entries of a batch export until one decides the wait.

    The trigger echoes every new entry into its own log (``PostHog <timestamp> <LEVEL>:
    <message>``), which Airflow 3 shows in the task's log, as Airflow 2.10 does with the
    triggerer's log handler. Events stay small: counts and the deciding entry, never pages.

    The log waits on one export in one triggerer share one read of its logs a poll round (see
    :meth:`~airflow_provider_posthog_bx.hooks.posthog_async.AsyncPostHogHook.get_logs_shared`);
    each still sees exactly the entries it would have read alone.

    Its kwargs are its only durable state: a restarted triggerer rebuilds it from ``cursor``
    and echoes again what was read since then. To bound that, once ``progress_interval``
    seconds have passed with new entries read, it yields ``progress`` so that the task defers
    again from the new cursor.

    Yields exactly one event, a dict with ``status``, ``read`` (new entries read and echoed by
    this trigger) and ``deadline``:

    - ``"match"``: ``entry`` is the matching entry;
    - ``"error_entry"``: ``entry`` is an ERROR/CRITICAL entry that fails the wait;
    - ``"progress"``: ``cursor`` is where to resume;
    - ``"timeout"``: the deadline passed first;
    - ``"error"``: ``message`` says why; ``retryable`` tells whether a task retry may help.

    :param cursor: :meth:`LogCursor.to_json` of what was already processed.
    :param search: case-insensitive substring of the message to wait for.
    :param level: upper-cased level name to wait for.
    :param fail_on_error: whether an ERROR/CRITICAL entry ends the wait as a failure.
    :param look_back: seconds of logs read again at every poll for late-visible entries.
    :param progress_interval: least seconds between two ``progress`` events.
    :param progress_entries: ignored; accepted so that triggers deferred by 0.2 still load.
    """

    def __init__(
        self,
        *,
        cursor: dict[str, Any],
        search: str | None = None,
        level: str | None = None,
        fail_on_error: bool = True,
        look_back: float = DEFAULT_LOOK_BACK.total_seconds(),
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        progress_entries: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cursor = LogCursor.from_json(cursor).to_json()
        self.search = search
        self.level = level
        self.fail_on_error = fail_on_error
        self.look_back = parse_look_back(look_back).total_seconds()
        self.progress_interval = float(progress_interval)

    def arguments(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "search": self.search,
            "level": self.level,
            "fail_on_error": self.fail_on_error,
            "look_back": self.look_back,
            "progress_interval": self.progress_interval,
        }

    def begin(self) -> None:
        self._watch = LogWatch(self.search, self.level, self.fail_on_error)
        self._position = LogCursor.from_json(self.cursor)
        self._read = 0
        self._last_report = time.monotonic()

    def event(self, status: str, **payload: Any) -> TriggerEvent:
        return super().event(status, read=self._read, deadline=self.deadline, **payload)

    def timeout_message(self) -> str:
        return (
            f"No matching log entry of batch export {self.batch_export_id} before the sensor's "
            "timeout"
        )

    async def poll(self, hook: AsyncPostHogHook) -> TriggerEvent | None:
        scan = LogScan(self._position, self._watch, parse_look_back(self.look_back))
        try:
            step = await self._scan(hook, scan)
        finally:
            # What was echoed stays echoed, even when a later page of this poll failed.
            self._position = scan.cursor
            self._read += scan.processed
        for warning in scan.warnings:
            self.log.warning("%s", warning)
        if step is not None:
            status = "match" if step.outcome == "match" else "error_entry"
            return self.event(status, entry=step.entry)
        due = time.monotonic() - self._last_report >= self.progress_interval
        if self._read and due:
            return self.event("progress", cursor=self._position.to_json())
        return None

    async def _scan(self, hook: AsyncPostHogHook, scan: LogScan) -> Step | None:
        """Read one poll, echoing each new entry; the deciding step, if any."""
        while (query := scan.next_query()) is not None:
            # Answered from the read shared by the log waits on the export when it covers the
            # query; this wait's cursor, look-back and filters stay its own.
            page = await hook.get_logs_shared(
                self.batch_export_id,
                after=query.after,
                before=query.before,
                limit=query.limit,
                max_age=self.poll_interval,
            )
            step = scan.feed(page)
            for entry in step.processed:
                self.log.info("%s", echo_line(entry))
            if step.outcome is not None:
                return step
        return None
