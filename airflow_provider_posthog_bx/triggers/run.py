"""BatchExportRunTrigger: waits in the triggerer for a batch export's run of one data interval.

Also holds the pure helpers the sensor shares with it: how to ask PostHog for the runs of an
interval and which of them is *the* run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from airflow_provider_posthog_bx import api
from airflow_provider_posthog_bx._compat import BaseTrigger, TriggerEvent
from airflow_provider_posthog_bx.exceptions import (
    PostHogAPIError,
    PostHogError,
    PostHogRateLimitError,
    PostHogServerError,
    PostHogTransportError,
)

TRANSIENT_ERRORS = (PostHogTransportError, PostHogServerError, PostHogRateLimitError)
EVENT_STATUSES = frozenset({"final", "timeout", "error"})

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _instant(value: Any) -> datetime | None:
    """PostHog's ``...Z`` datetimes (or our ISO strings) as aware UTC datetimes."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return (
        parsed.replace(tzinfo=timezone.utc)
        if parsed.tzinfo is None
        else parsed.astimezone(timezone.utc)
    )


def iso_z(value: datetime) -> str:
    """``2026-01-01T00:00:00Z``: UTC, microseconds only when non-zero."""
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


def interval_filters(start: datetime, end: datetime) -> dict[str, str]:
    """Run-list filters for the runs inside ``[start, end]``, whatever their age.

    Ordering by data interval makes PostHog filter on ``start``/``end`` instead of its
    default seven-day ``created_at`` window.
    """
    return {"ordering": "-data_interval_start", "start": iso_z(start), "end": iso_z(end)}


def pick_run(
    runs: Iterable[Mapping[str, Any]], start: datetime, end: datetime
) -> dict[str, Any] | None:
    """The run of exactly ``[start, end)``; the newest by ``created_at`` when several exist
    (retries, backfills), or None."""
    exact = [
        dict(run)
        for run in runs
        if _instant(run.get("data_interval_start")) == start
        and _instant(run.get("data_interval_end")) == end
    ]
    if not exact:
        return None
    return max(
        exact, key=lambda run: (_instant(run.get("created_at")) or _EPOCH, str(run.get("id")))
    )


def describe_run(run: Mapping[str, Any] | None) -> str:
    """One status line: ``Running (run 0190...)`` or ``no run yet``."""
    if run is None:
        return "no run yet"
    records = run.get("records_completed")
    done = f", {records} records" if records is not None else ""
    return f"{run.get('status')} (run {run.get('id')}{done})"


class BatchExportRunTrigger(BaseTrigger):  # type: ignore[misc,unused-ignore]
    """Poll a batch export's run of one data interval until it is final.

    Yields exactly one event, a dict with ``status``:

    - ``"final"``: ``run`` holds the run as PostHog returned it (any final status);
    - ``"timeout"``: the deadline passed first;
    - ``"error"``: ``message`` says why; ``retryable`` tells whether a task retry may help.

    Every argument is plain JSON; the deadline is an absolute Unix time.

    :param data_interval_start: ISO start of the interval (UTC, e.g. ``2026-01-01T00:00:00Z``).
    :param data_interval_end: ISO end of the interval.
    :param poll_interval: seconds between two checks.
    :param deadline: Unix time after which the wait gives up (None: wait forever).
    :param max_consecutive_errors: transient API errors in a row tolerated before giving up.
    """

    def __init__(
        self,
        *,
        posthog_conn_id: str,
        project_id: int | str | None,
        batch_export_id: str,
        data_interval_start: str,
        data_interval_end: str,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        max_consecutive_errors: int = 5,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id
        self.batch_export_id = batch_export_id
        self.data_interval_start = data_interval_start
        self.data_interval_end = data_interval_end
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.max_consecutive_errors = max_consecutive_errors

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "posthog_conn_id": self.posthog_conn_id,
                "project_id": self.project_id,
                "batch_export_id": self.batch_export_id,
                "data_interval_start": self.data_interval_start,
                "data_interval_end": self.data_interval_end,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_consecutive_errors": self.max_consecutive_errors,
            },
        )

    def _hook(self) -> Any:
        from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

        return AsyncPostHogHook(self.posthog_conn_id, self.project_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        start = _instant(self.data_interval_start)
        end = _instant(self.data_interval_end)
        if start is None or end is None:
            yield self._error(
                f"unusable data interval {self.data_interval_start!r} - {self.data_interval_end!r}",
                retryable=False,
            )
            return
        hook = self._hook()
        errors = 0
        last_line = None
        while True:
            try:
                runs = await hook.list_runs(self.batch_export_id, **interval_filters(start, end))
            except TRANSIENT_ERRORS as error:
                errors += 1
                if errors > self.max_consecutive_errors:
                    yield self._error(f"{error} ({errors} errors in a row)", retryable=True)
                    return
                self.log.warning(
                    "PostHog error while waiting (%d of %d tolerated in a row): %s",
                    errors,
                    self.max_consecutive_errors,
                    error,
                )
            except PostHogError as error:
                yield self._error(str(error), retryable=not isinstance(error, PostHogAPIError))
                return
            else:
                errors = 0
                run = pick_run(runs, start, end)
                line = describe_run(run)
                if line != last_line:
                    self.log.info(
                        "Batch export %s, interval %s - %s: %s",
                        self.batch_export_id,
                        self.data_interval_start,
                        self.data_interval_end,
                        line,
                    )
                    last_line = line
                if run is not None and api.is_final(str(run.get("status"))):
                    yield TriggerEvent({"status": "final", "run": run})
                    return
            remaining = None if self.deadline is None else self.deadline - time.time()
            if remaining is not None and remaining <= 0:
                yield TriggerEvent(
                    {
                        "status": "timeout",
                        "batch_export_id": self.batch_export_id,
                        "message": f"The run of {self.data_interval_start} - "
                        f"{self.data_interval_end} is not finished at the deadline ({last_line})",
                    }
                )
                return
            wait = self.poll_interval if remaining is None else min(self.poll_interval, remaining)
            await asyncio.sleep(wait)

    def _error(self, message: str, *, retryable: bool) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": "error",
                "batch_export_id": self.batch_export_id,
                "message": message,
                "retryable": retryable,
            }
        )
