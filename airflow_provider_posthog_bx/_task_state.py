"""A small JSON record kept for one task instance across its retries, forgotten by a user's clear.

The backfill operator uses it to remember which backfill a task instance started, so that a retry
resumes that backfill instead of creating a second one (PostHog does not dedupe backfills).

Where the record lives:

- Airflow 3.3+: the task state store (AIP-103, ``context["task_state_store"]``), key
  ``posthog_bx:<name>``. Airflow scopes the store by DAG run, task id and map index: the retries
  of a task instance share it, other task instances never see it, and it expires after
  ``[state_store] default_retention_days`` (30 by default).
- Airflow 2.10-3.2: an Airflow Variable ``posthog_bx_<name>_<hash>``, the hash being the first 32
  hex digits of the SHA-256 of (dag id, run id, task id, map index); its JSON value repeats those
  for humans. Variables are global, shown (and editable) in the UI and never expire, so the caller
  deletes the record when the task instance finishes, successfully or for the last time.

A user's clear. Airflow 3.3.x keeps the task state store on every clear (apache/airflow#72100,
#72929) and a Variable knows nothing of clears, so a record carries its *generation*, the task
instance's ``max_tries``, and a record of another generation reads as absent (the next
:meth:`TaskRecord.set` replaces it, :meth:`TaskRecord.delete` removes it). Measured on 3.3.2 and
2.10.5:

- a retry keeps ``max_tries`` (and ``dag_run.clear_number``): the retry finds the record;
- a clear of the task instance or of its DAG run, with or without resetting the run, sets
  ``max_tries = try_number + retries`` (in ``clear_task_instances``, which the UI, REST API and
  CLI all call): larger than before whenever the task ran since its last clear, so the next try
  starts fresh;
- clearing another task of the run leaves this task's ``max_tries`` alone;
- mark success / mark failed change neither number: the record stays until a later clear
  supersedes it, the caller deletes it, or (3.3) its retention ends.

``dag_run.clear_number`` is no generation: it is run-wide (clearing one task would reset every
task's record, and a task waiting to retry would then duplicate its backfill), and on 2.10 it
counts only clears of a finished run, never a REST clear (``reset_dag_runs`` defaults to False).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any, Literal

from airflow_provider_posthog_bx._compat import (
    AIRFLOW_V_3_0_PLUS,
    AIRFLOW_V_3_3_PLUS,
    variable_class,
)

log = logging.getLogger(__name__)

Backend = Literal["task_state_store", "variable"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A record name: up to 64 letters, digits, ``_`` and ``-`` (it is part of a Variable key)."""

STORE_KEY_PREFIX = "posthog_bx:"
VARIABLE_PREFIX = "posthog_bx_"


def generation(context: Any) -> int:
    """The task instance's clear generation: ``max_tries``, which a clear raises and a retry keeps.

    :param context: the Airflow task context.
    """
    return int(context["ti"].max_tries)


def is_last_try(context: Any) -> bool:
    """Whether a failure of the running try would be final (no retry would follow).

    This is Airflow's own rule for the installed line: on Airflow 3 the API server retries when
    ``max_tries != 0 and try_number <= max_tries``; on Airflow 2 when the task has ``retries`` and
    ``try_number <= max_tries``. It cannot foresee an ``AirflowFailException``, a retry policy that
    fails early (Airflow 3.3) or a user marking the task failed.

    :param context: the Airflow task context.
    """
    ti = context["ti"]
    try_number = int(ti.try_number)
    max_tries = int(ti.max_tries)
    if AIRFLOW_V_3_0_PLUS:
        will_retry = max_tries != 0 and try_number <= max_tries
    else:
        will_retry = bool(ti.task.retries) and try_number <= max_tries
    return not will_retry


class TaskRecord:
    """A JSON dict kept for one task instance across its retries, forgotten by a user's clear.

    Build it with :meth:`for_context` inside a running task. :meth:`get` and :meth:`set` raise when
    the backend fails (a record that silently failed to save would let a retry duplicate work);
    :meth:`delete` is best-effort cleanup and never raises.
    """

    backend: Backend
    """``"task_state_store"`` (Airflow 3.3+) or ``"variable"`` (Airflow 2.10-3.2)."""

    def __init__(
        self,
        *,
        backend: Backend,
        name: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int,
        generation: int,
        store: Any = None,
    ) -> None:
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"record name must be 1-64 letters, digits, '_' or '-' (got {name!r})")
        if backend == "task_state_store" and store is None:
            raise ValueError("the task_state_store backend needs the context's task_state_store")
        self.backend = backend
        self.name = name
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_id = task_id
        self.map_index = map_index
        self.generation = generation
        self._store = store

    @classmethod
    def for_context(cls, context: Any, name: str, *, backend: Backend | None = None) -> TaskRecord:
        """The record ``name`` of the task instance that ``context`` belongs to.

        :param context: the Airflow task context (``execute``'s argument).
        :param name: which record, e.g. ``"backfill"``; 1-64 letters, digits, ``_`` or ``-``.
        :param backend: force a backend (tests); by default the task state store on Airflow
            3.3+ (when the context has one) and a Variable before.
        """
        ti = context["ti"]
        store = context.get("task_state_store") if AIRFLOW_V_3_3_PLUS else None
        if backend is None:
            backend = "task_state_store" if store is not None else "variable"
        map_index = ti.map_index
        return cls(
            backend=backend,
            name=name,
            dag_id=str(ti.dag_id),
            run_id=str(ti.run_id),
            task_id=str(ti.task_id),
            map_index=-1 if map_index is None else int(map_index),
            generation=generation(context),
            store=store,
        )

    @property
    def key(self) -> str:
        """The task state store key or the Variable key this record is kept under."""
        if self.backend == "task_state_store":
            return f"{STORE_KEY_PREFIX}{self.name}"
        scope = json.dumps([self.dag_id, self.run_id, self.task_id, self.map_index])
        digest = hashlib.sha256(scope.encode()).hexdigest()[:32]
        return f"{VARIABLE_PREFIX}{self.name}_{digest}"

    def __repr__(self) -> str:
        return (
            f"TaskRecord({self.name!r}, {self.backend}, {self.dag_id}.{self.task_id}"
            f"[{self.map_index}] run {self.run_id!r}, generation {self.generation})"
        )

    def get(self) -> dict[str, Any] | None:
        """The value saved by an earlier try of this task instance since its last clear, or None.

        Raises ``ValueError`` when the key holds something this module did not write.
        """
        stored = self._read()
        if stored is None:
            return None
        if not isinstance(stored, dict) or not isinstance(stored.get("value"), dict):
            raise ValueError(
                f"{self.backend} key {self.key!r} does not hold a posthog-bx task record "
                f"(got {stored!r}); delete it to start this task instance afresh"
            )
        if stored.get("generation") != self.generation:
            log.info(
                "Ignoring the %s record of an earlier clear generation (%s, now %s)",
                self.name,
                stored.get("generation"),
                self.generation,
            )
            return None
        return dict(stored["value"])

    def set(self, value: dict[str, Any]) -> None:
        """Save ``value`` (JSON: str, int, float, bool, None, lists and dicts) for later tries.

        :param value: the dict to remember; replaces any earlier value.
        """
        if not isinstance(value, dict):
            raise TypeError(f"a task record holds a dict (got {type(value).__name__})")
        stored: dict[str, Any] = {"generation": self.generation, "value": value}
        json.dumps(stored)  # fail here, not in the backend, on a value that is not JSON
        if self.backend == "task_state_store":
            self._store.set(self.key, stored)
            return
        stored = {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": self.map_index,
            **stored,
        }
        variable_class().set(self.key, stored, description=self._description(), serialize_json=True)
        # Some Airflow 3 task SDK releases log a failed Variable write instead of raising.
        if self._read() != json.loads(json.dumps(stored)):
            raise RuntimeError(f"Airflow did not save Variable {self.key!r}; see the log above")

    def delete(self) -> None:
        """Forget the record. A missing record is fine; a backend error is logged, not raised
        (a stale record is harmless: only a retry of the same clear generation reads it)."""
        try:
            if self.backend == "task_state_store":
                self._store.delete(self.key)
            else:
                variable_class().delete(self.key)
        except Exception:
            log.warning("Could not delete %s key %r", self.backend, self.key, exc_info=True)

    def _read(self) -> Any:
        if self.backend == "task_state_store":
            return self._store.get(self.key)
        raw = variable_class().get(self.key, None)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw  # reported by get() as "not a task record"

    def _description(self) -> str:
        return (
            f"posthog-bx {self.name} record of task {self.dag_id}.{self.task_id} "
            f"(map index {self.map_index}) in run {self.run_id}: kept for the task's retries and "
            "deleted when it finishes. Safe to delete when that task is neither running nor "
            "waiting to retry."
        )
