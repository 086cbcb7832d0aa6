"""Run a DAG for real with ``dag.test()`` and read back task states and XComs.

Airflow 3.3 only runs DAGs that its DAG processor can serialise from the DAGs folder, so each
DAG is written as a file into the (test-session) DAGs folder, imported from there, run, and
removed again: the folder only ever holds the DAG under test.
"""

from __future__ import annotations

import importlib.util
import os
import textwrap
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

HEADER = """\
from __future__ import annotations

import datetime as dt

import pendulum

from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG, task
else:
    from airflow import DAG
    from airflow.decorators import task

"""


@dataclass
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    ti_states: dict[str, str | None]
    try_numbers: dict[str, int]

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return read_xcom(self.dag_id, self.run_id, task_id, key)


def dags_folder() -> Path:
    return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def run_dag(
    body: str,
    *,
    dag_id: str | None = None,
    logical_date: datetime | None = None,
    schedule: str | None = None,
    register_assets: bool = False,
) -> DagRunResult:
    """Write ``body`` (the statements inside ``with DAG(...) as dag:``) as a DAG file, run it
    once with ``dag.test()`` and return what happened.

    ``register_assets``: on Airflow 2, store the DAG's datasets and dataset aliases first, as
    the scheduler does when it parses a DAG file (2.10's ``dag.test()`` does not, and an event
    through an unregistered alias fails the task).
    """
    dag_id = dag_id or f"t_{uuid.uuid4().hex[:10]}"
    folder = dags_folder()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("dagtest_*.py"):  # only files this module wrote
        stale.unlink()
    source = (
        HEADER
        + f"with DAG({dag_id!r}, schedule={schedule!r}, "
        + "start_date=pendulum.datetime(2026, 1, 1, tz='UTC'), catchup=False) as dag:\n"
        + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
    )
    path = folder / f"dagtest_{dag_id}.py"
    path.write_text(source)
    try:
        spec = importlib.util.spec_from_file_location(f"dagfile_{dag_id}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag = module.dag
        from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS

        kwargs: dict[str, Any] = {}
        if logical_date is not None:
            kwargs["logical_date" if AIRFLOW_V_3_0_PLUS else "execution_date"] = logical_date
        if register_assets and not AIRFLOW_V_3_0_PLUS:
            dag.sync_to_db()
        dag_run = dag.test(**kwargs)
        tis = dag_run.get_task_instances()
        return DagRunResult(
            dag_id=dag_id,
            run_id=dag_run.run_id,
            state=str(dag_run.state),
            ti_states={ti.task_id: (str(ti.state) if ti.state else None) for ti in tis},
            try_numbers={ti.task_id: ti.try_number for ti in tis},
        )
    finally:
        path.unlink(missing_ok=True)


def read_xcom(dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    from airflow.utils.session import create_session

    from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS

    with create_session() as session:
        if AIRFLOW_V_3_0_PLUS:
            from airflow.models.xcom import XComModel

            row = (
                session.query(XComModel)
                .filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key)
                .one_or_none()
            )
            return None if row is None else XComModel.deserialize_value(row)
        from airflow.models.xcom import XCom

        return XCom.get_one(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key, session=session)
