"""BatchExportRunEventTrigger: an ``AssetWatcher`` trigger that fires once for each run PostHog
finishes, so DAGs can be scheduled on "PostHog has exported this interval"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_posthog_bx._compat import BaseEventTrigger, TriggerEvent
from airflow_provider_posthog_bx.core import runs
from airflow_provider_posthog_bx.core.statuses import COMPLETED, FAILED
from airflow_provider_posthog_bx.core.time import format_instant
from airflow_provider_posthog_bx.exceptions import PostHogError

if TYPE_CHECKING:
    from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

STATE_KEY_PREFIX = "posthog_bx_run_watch"
MAX_ERROR_WAIT = 600.0


class BatchExportRunEventTrigger(BaseEventTrigger):  # type: ignore[misc,unused-ignore]
    """Fires one event for each run of a batch export that reaches ``Completed`` after the
    watch started (scheduled runs and backfill runs alike); for an
    ``Asset(..., watchers=[AssetWatcher(name=..., trigger=...)])`` on Airflow 3.

    Edge-triggered: a run fires once, on the first poll that sees it final; runs already final
    when the watch first started never fire. Each poll is one request, the newest page of the
    export's runs (PostHog's 100 newest created within ``window``).

    Restarts: the triggerer restarts a watcher whose DAG file is re-parsed or whose triggerer
    died. On Airflow 3.3+ the watch's state is kept in the asset state store, so a restarted
    watcher fires for runs that finished while it was down and never twice for one run. On 3.0
    to 3.2 there is no such store: a restarted watcher takes a new baseline, so it never fires
    twice either, but runs that finished while no watcher ran do not fire.

    The event's payload (the asset event's ``extra["payload"]``): ``batch_export_id``, ``id``
    (the run), ``data_interval_start``, ``data_interval_end``, ``status``,
    ``records_completed``, ``bytes_exported`` and ``backfill`` (the backfill id, or None for a
    scheduled run).

    :param batch_export_id: the batch export to watch.
    :param posthog_conn_id: the Airflow connection to PostHog.
    :param project_id: the PostHog project id; defaults to the connection's.
    :param poll_interval: seconds between two polls (each one request).
    :param include_failed: also fire for runs that ended without succeeding (Failed,
        FailedRetryable, FailedBilling, Cancelled, Terminated, TimedOut); ``status`` tells.
    :param window: seconds back from now within which runs are listed (by ``created_at``): a
        run that takes longer than this from creation to a final status is not seen. PostHog
        lists 100 runs a page: keep ``window`` below 100 of the export's intervals.
    """

    def __init__(
        self,
        *,
        batch_export_id: str,
        posthog_conn_id: str = "posthog_default",
        project_id: int | str | None = None,
        poll_interval: float = 60.0,
        include_failed: bool = False,
        window: float = 6 * 3600.0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        self.batch_export_id = batch_export_id
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id
        self.poll_interval = float(poll_interval)
        self.include_failed = bool(include_failed)
        self.window = float(window)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Deterministic (no timestamps): Airflow identifies a watcher by classpath and kwargs,
        # so a kwarg that changed at every parse would make a new watcher at every parse.
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_export_id": self.batch_export_id,
                "posthog_conn_id": self.posthog_conn_id,
                "project_id": self.project_id,
                "poll_interval": self.poll_interval,
                "include_failed": self.include_failed,
                "window": self.window,
            },
        )

    @property
    def state_key(self) -> str:
        """The asset state store key of this watch (one per connection, project, export and
        kind of event)."""
        kind = "final" if self.include_failed else "completed"
        project = self.project_id if self.project_id is not None else "default"
        return f"{STATE_KEY_PREFIX}:{self.posthog_conn_id}:{project}:{self.batch_export_id}:{kind}"

    def hook(self) -> AsyncPostHogHook:
        from airflow_provider_posthog_bx.hooks.posthog_async import AsyncPostHogHook

        return AsyncPostHogHook(self.posthog_conn_id, self.project_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        store = getattr(self, "asset_state_store", None)
        watch = runs.RunWatch.from_json(await self._load(store))
        self.log.info(
            "Watching batch export %s for %s runs (%s)",
            self.batch_export_id,
            "final" if self.include_failed else "Completed",
            "resuming from the asset state store" if watch.baselined else "baseline first",
        )
        wanted = frozenset({COMPLETED} | (FAILED if self.include_failed else frozenset()))
        window = timedelta(seconds=self.window)
        errors = 0
        while True:
            now = datetime.now(timezone.utc)
            try:
                listed, more = await hook.list_runs_page(
                    self.batch_export_id, after=format_instant(now - window)
                )
            except PostHogError as error:
                # A watcher has no task to fail: it logs and keeps polling, backing off.
                errors += 1
                wait = min(self.poll_interval * 2 ** min(errors, 6), MAX_ERROR_WAIT)
                self.log.warning(
                    "Batch export %s: %s; next poll in %.0f s", self.batch_export_id, error, wait
                )
                await asyncio.sleep(wait)
                continue
            errors = 0
            if more:
                self.log.warning(
                    "Batch export %s has more than %d runs created in the last %.0f s: older "
                    "ones are not watched (lower window)",
                    self.batch_export_id,
                    runs.WATCH_PAGE_SIZE,
                    self.window,
                )
            before = watch.to_json()
            fired = watch.step(listed, now, window, wanted)
            if watch.to_json() != before:
                # Stored before the events are sent: a crash in between loses them rather
                # than sending them twice (a second downstream run is a duplicate).
                await self._save(store, watch.to_json())
            for run in fired:
                self.log.info(
                    "Run %s of %s - %s: %s",
                    run.get("id"),
                    run.get("data_interval_start"),
                    run.get("data_interval_end"),
                    run.get("status"),
                )
                yield TriggerEvent(runs.watch_payload(run, self.batch_export_id))
            await asyncio.sleep(self.poll_interval)

    async def _load(self, store: Any) -> Any:
        if store is None:
            return None
        try:
            return await store.aget(self.state_key)
        except (ValueError, KeyError, TypeError) as error:
            self.log.warning("No asset state for this watch (%s): it starts afresh", error)
            return None

    async def _save(self, store: Any, state: dict[str, Any]) -> None:
        if store is None:
            return
        try:
            await store.aset(self.state_key, state)
        except (ValueError, KeyError, TypeError) as error:
            self.log.warning("Could not store this watch's state (%s)", error)
