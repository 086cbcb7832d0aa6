"""TaskRecord and is_last_try inside real Airflow (dag.test()): retries, a user's clear, mapping.

One DAG run per backend exercises everything (dag.test() costs seconds):

- ``work`` (retries=1) fails on try 1 and succeeds on try 2; a downstream ``user_clears`` then
  clears ``work`` the way Airflow's REST endpoint does (``dag.clear(dry_run=True)`` and
  ``clear_task_instances``, with ``reset_dag_runs=False``, the REST default on Airflow 2), and
  dag.test()'s own scheduling loop runs ``work`` again: try 3 fails, try 4 succeeds and deletes.
- ``mapped`` (two map indexes, retries=1) fails on try 1 and succeeds on try 2.
- ``once`` (retries=0) only reports ``is_last_try``.

dag.test() runs a retry inline on both lines once ``retry_delay`` (0 here) has passed.
Every try appends what it saw to a JSON-lines file that the tests read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dag_runner import DagRunResult, run_dag

from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_3_PLUS

DAG_BODY = """
import json
from airflow_provider_posthog_bx._compat import variable_class
from airflow_provider_posthog_bx._task_state import TaskRecord, is_last_try

OBSERVED = {observed!r}
BACKEND = {backend!r}


def observe(context, **seen):
    ti = context["ti"]
    row = dict(task_id=ti.task_id, map_index=ti.map_index, try_number=ti.try_number, **seen)
    with open(OBSERVED, "a") as f:
        f.write(json.dumps(row) + "\\n")


@task(retries=1, retry_delay=dt.timedelta(seconds=0))
def work(**context):
    record = TaskRecord.for_context(context, "probe", backend=BACKEND)
    try_number = context["ti"].try_number
    got = record.get()
    seen = dict(got=got, last=is_last_try(context), backend=record.backend, key=record.key)
    if record.backend == "variable" and got is not None:
        seen["variable"] = json.loads(variable_class().get(record.key))
    if try_number in (1, 3):  # the first try since the run started / since the clear
        record.set({{"backfill_id": f"b-{{try_number}}", "set_by_try": try_number}})
        observe(context, **seen)
        raise RuntimeError(f"try {{try_number}} fails on purpose")
    if try_number == 4:
        record.delete()
        record.delete()  # deleting a missing record is fine
        seen["after_delete"] = record.get()
    observe(context, **seen)


@task
def user_clears(**context):
    from airflow.models.taskinstance import clear_task_instances
    from airflow.utils.session import create_session

    from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS

    dag_run = context["dag_run"]
    with create_session() as session:
        if AIRFLOW_V_3_0_PLUS:
            from airflow.models.dagbag import DBDagBag

            sdag = DBDagBag().get_latest_version_of_dag(dag_run.dag_id, session=session)
            tis = sdag.clear(
                dry_run=True, task_ids=["work"], run_id=dag_run.run_id, session=session
            )
            clear_task_instances(tis, session, False)
        else:
            sdag = context["dag"]
            when = dag_run.execution_date
            tis = sdag.clear(
                dry_run=True, task_ids=["work"], start_date=when, end_date=when, session=session
            )
            clear_task_instances(tis, session, dag=sdag, dag_run_state=False)
    observe(context, cleared=[ti.task_id for ti in tis])


@task(retries=1, retry_delay=dt.timedelta(seconds=0))
def mapped(x, **context):
    record = TaskRecord.for_context(context, "probe", backend=BACKEND)
    got = record.get()
    if context["ti"].try_number == 1:
        record.set({{"x": x}})
        observe(context, got=got, x=x, key=record.key)
        raise RuntimeError("try 1 fails on purpose")
    record.delete()
    observe(context, got=got, x=x, after_delete=record.get())


@task(retries=0)
def once(**context):
    observe(context, last=is_last_try(context))


work() >> user_clears()
mapped.expand(x=[10, 11])
once()
"""

BACKENDS = ["task_state_store", "variable"] if AIRFLOW_V_3_3_PLUS else ["variable"]


class Run:
    def __init__(self, backend: str, result: DagRunResult, observed: Path) -> None:
        self.backend = backend
        self.result = result
        self.rows = [json.loads(line) for line in observed.read_text().splitlines()]

    def tries(self, task_id: str, map_index: int = -1) -> dict[int, dict[str, Any]]:
        rows = [r for r in self.rows if r["task_id"] == task_id and r["map_index"] == map_index]
        by_try = {r["try_number"]: r for r in rows}
        assert len(by_try) == len(rows), rows
        return by_try


@pytest.fixture(scope="module", params=BACKENDS)
def run(request: pytest.FixtureRequest, airflow_db: Any, tmp_path_factory: Any) -> Run:
    backend = request.param
    observed = tmp_path_factory.mktemp(backend) / "observed.jsonl"
    observed.touch()
    result = run_dag(DAG_BODY.format(observed=str(observed), backend=backend))
    return Run(backend, result, observed)


def test_the_backend_is_the_task_state_store_on_3_3_and_a_variable_before() -> None:
    from airflow_provider_posthog_bx._task_state import TaskRecord

    class TI:
        dag_id, run_id, task_id, map_index, max_tries = "d", "r", "t", None, 0

    store = object()
    record = TaskRecord.for_context({"ti": TI(), "task_state_store": store}, "probe")
    assert record.backend == ("task_state_store" if AIRFLOW_V_3_3_PLUS else "variable")
    assert record.map_index == -1
    assert TaskRecord.for_context({"ti": TI()}, "probe").backend == "variable"
    with pytest.raises(ValueError, match="record name"):
        TaskRecord.for_context({"ti": TI()}, "bad name")


def test_each_task_instance_has_its_own_variable() -> None:
    from airflow_provider_posthog_bx._task_state import TaskRecord

    scope = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1}
    base = TaskRecord(backend="variable", name="probe", generation=1, **scope)
    others = [
        {**scope, field: value}
        for field, value in (
            ("dag_id", "d2"),
            ("run_id", "r2"),
            ("task_id", "t2"),
            ("map_index", 0),
        )
    ]
    keys = {TaskRecord(backend="variable", name="probe", generation=1, **o).key for o in others}
    assert base.key not in keys and len(keys) == 4
    # The generation is in the value, not the key: a clear's record replaces the stale one.
    assert TaskRecord(backend="variable", name="probe", generation=2, **scope).key == base.key
    assert TaskRecord(backend="variable", name="other", generation=1, **scope).key != base.key
    store_keys = {
        TaskRecord(backend="task_state_store", name=name, generation=1, store=object(), **scope).key
        for name in ("probe", "other")
    }
    assert store_keys == {"posthog_bx:probe", "posthog_bx:other"}


def test_a_retry_finds_what_the_failed_try_saved(run: Run) -> None:
    assert run.result.ti_states["work"] == "success"
    assert run.result.try_numbers["work"] == 4
    work = run.tries("work")
    assert sorted(work) == [1, 2, 3, 4]
    assert {w["backend"] for w in work.values()} == {run.backend}
    assert work[1]["got"] is None
    assert work[2]["got"] == {"backfill_id": "b-1", "set_by_try": 1}


def test_a_cleared_task_starts_fresh(run: Run) -> None:
    work = run.tries("work")
    assert run.tries("user_clears")[1]["cleared"] == ["work"]
    # try 3 is the first try after the clear: try 1's record (read back by try 2) is not found ...
    assert work[3]["got"] is None
    # ... while the clear's own retry finds what try 3 saved under the same key.
    assert work[4]["got"] == {"backfill_id": "b-3", "set_by_try": 3}
    assert work[3]["key"] == work[1]["key"]


def test_map_indexes_keep_separate_records(run: Run) -> None:
    assert run.result.ti_states["mapped"] == "success"
    for map_index, x in ((0, 10), (1, 11)):
        tries = run.tries("mapped", map_index)
        assert tries[1]["got"] is None, "a map index saw another's record"
        assert tries[2]["got"] == {"x": x}
        assert tries[2]["after_delete"] is None


def test_delete_removes_the_record(run: Run) -> None:
    from airflow.utils.session import create_session

    work = run.tries("work")
    assert work[4]["after_delete"] is None
    with create_session() as session:
        if run.backend == "variable":
            from airflow.models.variable import Variable

            left = session.query(Variable).filter(Variable.key.like("posthog_bx_probe_%")).all()
            assert [v.key for v in left] == []
        else:
            from airflow.models.task_state_store import TaskStateStoreModel as Row

            rows = session.query(Row).filter_by(dag_id=run.result.dag_id).all()
            assert [(r.task_id, r.map_index, r.key) for r in rows] == []


def test_the_record_is_kept_under_a_key_naming_it(run: Run) -> None:
    work = run.tries("work")
    mapped_keys = {run.tries("mapped", i)[1]["key"] for i in (0, 1)}
    if run.backend == "task_state_store":  # Airflow scopes the store to the task instance
        assert {work[2]["key"], *mapped_keys} == {"posthog_bx:probe"}
        return
    assert work[2]["key"].startswith("posthog_bx_probe_") and len(work[2]["key"]) == 49
    assert work[2]["variable"] == {
        "dag_id": run.result.dag_id,
        "run_id": run.result.run_id,
        "task_id": "work",
        "map_index": -1,
        "generation": 1,
        "value": {"backfill_id": "b-1", "set_by_try": 1},
    }
    assert len(mapped_keys) == 2 and work[2]["key"] not in mapped_keys


def test_is_last_try_is_true_only_when_no_retry_is_left(run: Run) -> None:
    work = run.tries("work")
    assert [work[n]["last"] for n in (1, 2, 3, 4)] == [False, True, False, True]
    assert run.tries("once")[1]["last"] is True  # retries=0: the first try is the last
