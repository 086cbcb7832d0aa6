"""The "PostHog batch export" extra link."""

from __future__ import annotations

from typing import Any

import pytest
from dag_runner import run_dag

from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_posthog_bx.links.batch_export import BatchExportLink, batch_export_url
from airflow_provider_posthog_bx.operators import (
    BatchExportBackfillOperator,
    DeleteOperator,
    PauseOperator,
    UnpauseOperator,
)


def test_link_url_format() -> None:
    assert (
        batch_export_url("https://eu.posthog.com/", 42, "0195-abc")
        == "https://eu.posthog.com/project/42/pipeline/batch-exports/0195-abc"
    )


@pytest.mark.parametrize(
    "operator", [BatchExportBackfillOperator, PauseOperator, UnpauseOperator, DeleteOperator]
)
def test_every_operator_has_the_link(operator: Any) -> None:
    assert any(isinstance(link, BatchExportLink) for link in operator.operator_extra_links)
    assert BatchExportLink.name == "PostHog batch export"


def test_link_works_after_success_and_failure_without_api_calls(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = make_emulator()
    export = emu.create_batch_export(interval="hour")
    eid = export["id"]
    result = run_dag(
        "from airflow_provider_posthog_bx.operators import BatchExportBackfillOperator, "
        "PauseOperator\n"
        f"PauseOperator(task_id='ok', batch_export_id={eid!r})\n"
        f"BatchExportBackfillOperator(task_id='bad', batch_export_id={eid!r}, "
        "start_at='not a date', end_at='2026-01-01')\n"
    )
    assert result.ti_states == {"ok": "success", "bad": "failed"}
    expected = f"{emu.url}/project/{emu.project_id}/pipeline/batch-exports/{eid}"
    requests_before = len(emu.requests)
    # The link reads no connection: remove it before resolving.
    monkeypatch.delenv("AIRFLOW_CONN_POSTHOG_DEFAULT")
    for task_id in ("ok", "bad"):
        if AIRFLOW_V_3_0_PLUS:
            # Airflow 3 resolves links in the task process and stores them in XCom.
            link = result.xcom(task_id, BatchExportLink().xcom_key)
        else:
            from airflow.models.taskinstancekey import TaskInstanceKey

            key = TaskInstanceKey(result.dag_id, task_id, result.run_id, 1)
            link = BatchExportLink().get_link(operator=None, ti_key=key)
        assert link == expected
    assert len(emu.requests) == requests_before
