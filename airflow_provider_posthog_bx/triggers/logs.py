"""BatchExportLogsTrigger: reads a batch export's new PostHog log entries in the triggerer."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow_provider_posthog_bx.core.logs import PAGE_SIZE, LogCursor, LogScan, LogWatch
from airflow_provider_posthog_bx.triggers.base import PollingTrigger

if TYPE_CHECKING:
    from airflow_provider_posthog_bx._compat import TriggerEvent
    from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

# Entries one scan keeps in memory (and so at most ~this many in one event's payload).
MAX_ENTRIES_PER_EVENT = 2 * PAGE_SIZE
EVENT_STATUSES = frozenset({"match", "error_entry", "progress"})


class BatchExportLogsTrigger(PollingTrigger):
    """Read new log entries of a batch export until one decides the wait.

    The trigger never keeps state its kwargs do not have: it starts from ``cursor`` and
    reports every entry it read in the one event it yields, with the cursor after them. If
    the triggerer restarts before the event, the new trigger reads the same entries again
    from the same cursor, so none is lost and none is reported twice.

    Yields exactly one event, a dict with ``status``, ``cursor`` (after ``entries``),
    ``entries`` (entries read since ``cursor``, oldest first, for the task log) and
    ``deadline``:

    - ``"match"``: ``entry`` is the matching entry (the last of ``entries``);
    - ``"error_entry"``: ``entry`` is an ERROR/CRITICAL entry that fails the wait;
    - ``"progress"``: non-matching entries were read; resume with the new cursor;
    - ``"timeout"``: the deadline passed first;
    - ``"error"``: ``message`` says why; ``retryable`` tells whether a task retry may help.

    :param cursor: :meth:`LogCursor.to_json` of what was already reported.
    :param search: case-insensitive substring of the message to wait for.
    :param level: upper-cased level name to wait for.
    :param fail_on_error: whether an ERROR/CRITICAL entry ends the wait as a failure.
    :param progress_interval: least seconds between two ``progress`` events.
    :param progress_entries: report ``progress`` sooner once this many entries are waiting.
    """

    def __init__(
        self,
        *,
        cursor: dict[str, Any],
        search: str | None = None,
        level: str | None = None,
        fail_on_error: bool = True,
        progress_interval: float = 60.0,
        progress_entries: int = 200,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cursor = LogCursor.from_json(cursor).to_json()
        self.search = search
        self.level = level
        self.fail_on_error = fail_on_error
        self.progress_interval = float(progress_interval)
        self.progress_entries = int(progress_entries)

    def arguments(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "search": self.search,
            "level": self.level,
            "fail_on_error": self.fail_on_error,
            "progress_interval": self.progress_interval,
            "progress_entries": self.progress_entries,
        }

    def begin(self) -> None:
        # What this run read since ``self.cursor``; reported in the one event it yields.
        self._watch = LogWatch(self.search, self.level, self.fail_on_error)
        self._position = LogCursor.from_json(self.cursor)
        self._pending: list[dict[str, Any]] = []
        self._last_report = time.monotonic()
        self._more = False

    def event(self, status: str, **payload: Any) -> TriggerEvent:
        return super().event(
            status,
            cursor=self._position.to_json(),
            entries=self._pending,
            deadline=self.deadline,
            **payload,
        )

    def timeout_message(self) -> str:
        return (
            f"No matching log entry of batch export {self.batch_export_id} before the sensor's "
            "timeout"
        )

    def next_wait(self) -> float:
        return 0.0 if self._more else self.poll_interval

    async def poll(self, hook: AsyncPostHogHook) -> TriggerEvent | None:
        scan = LogScan(self._position, max_entries=MAX_ENTRIES_PER_EVENT)
        while (query := scan.next_query()) is not None:
            scan.feed(
                await hook.get_logs(
                    self.batch_export_id, after=query.after, before=query.before, limit=query.limit
                )
            )
        for warning in scan.warnings:
            self.log.warning("%s", warning)
        step = scan.step(self._watch)
        self._more = scan.truncated
        self._pending.extend(step.processed)
        self._position = step.cursor
        if step.outcome is not None:
            status = "match" if step.outcome == "match" else "error_entry"
            return self.event(status, entry=step.entry)
        due = time.monotonic() - self._last_report >= self.progress_interval
        if self._pending and (due or len(self._pending) >= self.progress_entries):
            return self.event("progress")
        return None
