"""BatchExportLogsTrigger: reads a batch export's new PostHog log entries in the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow_provider_posthog_bx._compat import BaseTrigger, TriggerEvent
from airflow_provider_posthog_bx.exceptions import (
    PostHogAPIError,
    PostHogError,
    PostHogRateLimitError,
    PostHogServerError,
    PostHogTransportError,
)
from airflow_provider_posthog_bx.log_cursor import (
    PAGE_SIZE,
    LogCursor,
    LogScan,
    LogWatch,
    Step,
    process,
)

TRANSIENT_ERRORS = (PostHogTransportError, PostHogServerError, PostHogRateLimitError)

# Entries one scan keeps in memory (and so at most ~this many in one event's payload).
MAX_ENTRIES_PER_EVENT = 2 * PAGE_SIZE
EVENT_STATUSES = frozenset({"match", "error_entry", "progress", "timeout", "error"})


class BatchExportLogsTrigger(BaseTrigger):  # type: ignore[misc,unused-ignore]
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
    :param poll_interval: seconds between two reads.
    :param progress_interval: least seconds between two ``progress`` events.
    :param progress_entries: report ``progress`` sooner once this many entries are waiting.
    :param deadline: Unix time after which the wait gives up (None: wait forever).
    :param max_consecutive_errors: transient API errors in a row tolerated before giving up.
    """

    def __init__(
        self,
        *,
        posthog_conn_id: str,
        project_id: int | str | None,
        batch_export_id: str,
        cursor: dict[str, Any],
        search: str | None = None,
        level: str | None = None,
        fail_on_error: bool = True,
        poll_interval: float = 30.0,
        progress_interval: float = 60.0,
        progress_entries: int = 200,
        deadline: float | None = None,
        max_consecutive_errors: int = 5,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id
        self.batch_export_id = batch_export_id
        self.cursor = LogCursor.from_json(cursor).to_json()
        self.search = search
        self.level = level
        self.fail_on_error = fail_on_error
        self.poll_interval = float(poll_interval)
        self.progress_interval = float(progress_interval)
        self.progress_entries = int(progress_entries)
        self.deadline = deadline
        self.max_consecutive_errors = max_consecutive_errors

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "posthog_conn_id": self.posthog_conn_id,
                "project_id": self.project_id,
                "batch_export_id": self.batch_export_id,
                "cursor": self.cursor,
                "search": self.search,
                "level": self.level,
                "fail_on_error": self.fail_on_error,
                "poll_interval": self.poll_interval,
                "progress_interval": self.progress_interval,
                "progress_entries": self.progress_entries,
                "deadline": self.deadline,
                "max_consecutive_errors": self.max_consecutive_errors,
            },
        )

    def _hook(self) -> Any:
        from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

        return AsyncPostHogHook(self.posthog_conn_id, self.project_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        watch = LogWatch(self.search, self.level, self.fail_on_error)
        cursor = LogCursor.from_json(self.cursor)
        pending: list[dict[str, Any]] = []
        last_report = time.monotonic()
        errors = 0
        while True:
            more = False
            try:
                step, more = await read_new_entries(
                    hook, self.batch_export_id, cursor, watch, self.log
                )
            except TRANSIENT_ERRORS as error:
                errors += 1
                if errors > self.max_consecutive_errors:
                    message = f"{error} ({errors} errors in a row)"
                    yield self._event("error", cursor, pending, message=message, retryable=True)
                    return
                self.log.warning(
                    "PostHog error while reading logs (%d of %d tolerated in a row): %s",
                    errors,
                    self.max_consecutive_errors,
                    error,
                )
            except PostHogError as error:
                retryable = not isinstance(error, PostHogAPIError)
                yield self._event("error", cursor, pending, message=str(error), retryable=retryable)
                return
            else:
                errors = 0
                pending.extend(step.processed)
                cursor = step.cursor
                if step.outcome is not None:
                    status = "match" if step.outcome == "match" else "error_entry"
                    yield self._event(status, cursor, pending, entry=step.entry)
                    return
                due = time.monotonic() - last_report >= self.progress_interval
                if pending and (due or len(pending) >= self.progress_entries):
                    yield self._event("progress", cursor, pending)
                    return
            remaining = None if self.deadline is None else self.deadline - time.time()
            if remaining is not None and remaining <= 0:
                yield self._event(
                    "timeout",
                    cursor,
                    pending,
                    message=f"No matching log entry of batch export {self.batch_export_id} "
                    "before the sensor's timeout",
                )
                return
            if not more:
                wait = (
                    self.poll_interval if remaining is None else min(self.poll_interval, remaining)
                )
                await asyncio.sleep(wait)

    def _event(
        self, status: str, cursor: LogCursor, entries: list[dict[str, Any]], **extra: Any
    ) -> TriggerEvent:
        payload: dict[str, Any] = {
            "status": status,
            "batch_export_id": self.batch_export_id,
            "cursor": cursor.to_json(),
            "entries": entries,
            "deadline": self.deadline,
            **extra,
        }
        return TriggerEvent(payload)


async def read_new_entries(
    hook: Any, batch_export_id: str, cursor: LogCursor, watch: LogWatch, log: Any
) -> tuple[Step, bool]:
    """Read the entries after ``cursor`` (all pages) and process them.

    Returns the step and whether more new entries remain than one scan keeps (read again
    without waiting).
    """
    scan = LogScan(cursor, max_entries=MAX_ENTRIES_PER_EVENT)
    while (query := scan.next_query()) is not None:
        page = await hook.get_logs(
            batch_export_id, after=query.after, before=query.before, limit=query.limit
        )
        scan.feed(page)
    for warning in scan.warnings:
        log.warning("%s", warning)
    return process(cursor, scan.entries(), watch), scan.truncated
