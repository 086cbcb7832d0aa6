"""Asset events (Datasets on Airflow 2) and OpenLineage of the tasks that wait for exported
data, inside real Airflow (dag.test()), read back from the metadata database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from dag_runner import run_dag
from support import hour_range

from airflow_provider_posthog_bx._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from airflow_provider_posthog_bx.assets import destination_uri
from airflow_provider_posthog_bx.core.time import format_instant

ASSETS = (
    "from airflow.sdk import Asset, AssetAlias\n"
    if AIRFLOW_V_3_0_PLUS
    else "from airflow.datasets import Dataset as Asset, DatasetAlias as AssetAlias\n"
)
IMPORTS = ASSETS + (
    "from airflow_provider_posthog_bx.operators import BatchExportBackfillOperator\n"
    "from airflow_provider_posthog_bx.sensors import BatchExportRunSensor\n"
)


def asset_events(dag_id: str) -> list[tuple[str, dict[str, Any], str | None]]:
    """(asset URI, extra, partition key) of the events the DAG's tasks emitted."""
    from airflow.utils.session import create_session

    with create_session() as session:
        if AIRFLOW_V_3_0_PLUS:
            from airflow.models.asset import AssetEvent

            rows = session.query(AssetEvent).filter_by(source_dag_id=dag_id).all()
            return [(e.asset.uri, dict(e.extra), getattr(e, "partition_key", None)) for e in rows]
        from airflow.models.dataset import DatasetEvent

        rows = session.query(DatasetEvent).filter_by(source_dag_id=dag_id).all()
        return [(e.dataset.uri, dict(e.extra), None) for e in rows]


def test_backfill_and_run_sensor_emit_events_for_the_destination_asset(
    airflow_db, posthog_emulator_default, posthog_connection
):
    emu = posthog_emulator_default
    export = emu.create_batch_export(interval="hour")
    uri = destination_uri(export)
    assert uri is not None and uri.startswith("s3://")
    start, end = hour_range(emu, hours=2, ago=1)
    run_start, run_end = hour_range(emu, hours=1)
    run = emu.add_run(export["id"], run_start, run_end, records_completed=77)
    body = IMPORTS + (
        f"backfill = BatchExportBackfillOperator(task_id='backfill', batch_export_id="
        f"{export['id']!r}, start_at={start.isoformat()!r}, end_at={end.isoformat()!r}, "
        "poll_interval=0.3, outlets=[AssetAlias('posthog_backfilled'), Asset('warehouse://dw/a')])\n"
        f"deferred = BatchExportBackfillOperator(task_id='deferred', batch_export_id="
        f"{export['id']!r}, start_at={(start - timedelta(hours=2)).isoformat()!r}, "
        f"end_at={start.isoformat()!r}, poll_interval=0.3, deferrable=True, "
        "outlets=[AssetAlias('posthog_deferred')])\n"
        f"sensor = BatchExportRunSensor(task_id='sensor', batch_export_id={export['id']!r}, "
        f"data_interval_start={run_start.isoformat()!r}, "
        f"data_interval_end={run_end.isoformat()!r}, poke_interval=0.3, "
        "outlets=[AssetAlias('posthog_run'), Asset('warehouse://dw/b')])\n"
        "nothing = BatchExportRunSensor(task_id='no_outlets', batch_export_id="
        f"{export['id']!r}, data_interval_start={run_start.isoformat()!r}, "
        f"data_interval_end={run_end.isoformat()!r}, poke_interval=0.3)\n"
        "backfill >> deferred\n"
    )
    result = run_dag(body, register_assets=True)
    assert set(result.ti_states.values()) == {"success"}, result.ti_states
    backfill_id = result.xcom("backfill")
    deferred_id = result.xcom("deferred")
    events = asset_events(result.dag_id)
    by_uri: dict[str, list[dict[str, Any]]] = {}
    for event_uri, extra, _ in events:
        by_uri.setdefault(event_uri, []).append(extra)
    # The backfill's events: through the alias for the destination, and on the concrete asset.
    backfilled = {
        "batch_export_id": export["id"],
        "data_interval_start": format_instant(start),
        "data_interval_end": format_instant(end),
        "records_completed": emu.get_backfill(backfill_id).get("total_records_count"),
        "backfill_id": backfill_id,
        "partition_key": start.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    assert backfilled in by_uri[uri]
    assert by_uri["warehouse://dw/a"] == [backfilled]
    # Resumed from the triggerer (a new operator object): the same event.
    assert any(e.get("backfill_id") == deferred_id for e in by_uri[uri])
    ran = {
        "batch_export_id": export["id"],
        "data_interval_start": run["data_interval_start"],
        "data_interval_end": run["data_interval_end"],
        "records_completed": 77,
        "bytes_exported": run.get("bytes_exported"),
        "run_id": run["id"],
        "partition_key": run_start.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    assert ran in by_uri[uri]
    assert by_uri["warehouse://dw/b"] == [ran]
    assert len(by_uri[uri]) == 3  # one per alias outlet; the task without outlets sent none


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="partition keys are Airflow 3.3+")
def test_partitioned_outlets_give_each_backfilled_interval_its_partition_key(
    airflow_db, posthog_emulator_default, posthog_connection
):
    emu = posthog_emulator_default
    export = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=3, ago=1)
    body = IMPORTS + (
        f"BatchExportBackfillOperator(task_id='backfill', batch_export_id={export['id']!r}, "
        f"start_at={start.isoformat()!r}, end_at={end.isoformat()!r}, poll_interval=0.3, "
        "partitioned_outlets=True, outlets=[Asset('warehouse://dw/partitioned')])\n"
    )
    result = run_dag(body, register_assets=True)
    assert result.ti_states == {"backfill": "success"}
    keys = sorted(key for uri, _, key in asset_events(result.dag_id) if uri.endswith("partitioned"))
    assert keys == [(start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%S") for h in range(3)]


def test_an_export_posthog_cannot_name_sends_no_alias_event_unless_the_dag_names_it(
    airflow_db, posthog_emulator_default, posthog_connection
):
    emu = posthog_emulator_default
    export = emu.create_batch_export(destination={"type": "NoOp", "config": {}})
    run_start, run_end = hour_range(emu, hours=1)
    emu.add_run(export["id"], run_start, run_end)
    sensor = (
        f"BatchExportRunSensor(task_id={{task!r}}, batch_export_id={export['id']!r}, "
        f"data_interval_start={run_start.isoformat()!r}, "
        f"data_interval_end={run_end.isoformat()!r}, poke_interval=0.3, "
        "outlets=[AssetAlias({task!r})]{more})\n"
    )
    body = IMPORTS + (
        sensor.format(task="unnamed", more="")
        + sensor.format(task="named", more=", destination_uri='noop://sink/table'")
    )
    result = run_dag(body, register_assets=True)
    assert result.ti_states == {"unnamed": "success", "named": "success"}
    assert [uri for uri, _, _ in asset_events(result.dag_id)] == ["noop://sink/table"]


def test_openlineage_facets_name_the_posthog_model_and_the_destination(
    airflow_db, posthog_emulator_default, posthog_connection
):
    pytest.importorskip("airflow.providers.openlineage", reason="the openlineage extra")
    from airflow_provider_posthog_bx.sensors import BatchExportRunSensor

    emu = posthog_emulator_default
    export = emu.create_batch_export(interval="hour")
    run_start, run_end = hour_range(emu, hours=1)
    run = emu.add_run(export["id"], run_start, run_end, records_completed=12)
    sensor = BatchExportRunSensor(
        task_id="sensor",
        batch_export_id=export["id"],
        data_interval_start=run_start,
        data_interval_end=run_end,
        outlets=[],
    )
    assert sensor.get_openlineage_facets_on_complete(None) is None  # nothing seen yet

    class TI:
        def xcom_push(self, key: str, value: Any) -> None:
            pass

    sensor.poke({"ti": TI()})
    # The same operator object the listener calls after the task succeeded.
    lineage = sensor.get_openlineage_facets_on_complete(None)
    assert lineage is not None, "no lineage after the run completed"
    (source,) = lineage.inputs
    assert (source.namespace, source.name) == (
        f"posthog://{emu.url.split('://', 1)[1]}",
        f"{emu.project_id}.events",
    )
    (sink,) = lineage.outputs
    bucket = export["destination"]["config"]["bucket_name"]
    assert sink.namespace == f"s3://{bucket}"
    assert sink.outputFacets["outputStatistics"].rowCount == 12
    query = lineage.run_facets["externalQuery"]
    assert query.externalQueryId == run["id"]
    assert query.source.endswith(f"/pipeline/batch-exports/{export['id']}")


def test_gap_backfills_and_an_older_posthogs_backfill_are_reported_too(make_emulator):
    emu = make_emulator(legacy_deployment="no-backfills")
    legacy = emu.create_batch_export(interval="hour")
    start, end = hour_range(emu, hours=3)
    body = IMPORTS + (
        f"BatchExportBackfillOperator(task_id='legacy', batch_export_id={legacy['id']!r}, "
        f"start_at={start.isoformat()!r}, end_at={end.isoformat()!r}, poll_interval=0.3, "
        "outlets=[Asset('warehouse://dw/legacy')])\n"
    )
    result = run_dag(body, register_assets=True)
    assert result.ti_states == {"legacy": "success"}
    [(_, extra, _)] = asset_events(result.dag_id)
    assert extra["backfill_id"] == result.xcom("legacy")  # the workflow id PostHog gave
    assert (extra["data_interval_start"], extra["data_interval_end"]) == (
        format_instant(start),
        format_instant(end),
    )
    records = [r["records_completed"] for r in emu.runs(legacy["id"])]
    assert extra["records_completed"] == sum(records) and len(records) == 3

    emu.legacy_deployment = None
    gaps = emu.create_batch_export(interval="hour")
    hour = timedelta(hours=1)
    emu.add_run(gaps["id"], start + hour, start + 2 * hour)  # the middle hour is exported
    body = IMPORTS + (
        f"BatchExportBackfillOperator(task_id='gaps', batch_export_id={gaps['id']!r}, "
        f"start_at={start.isoformat()!r}, end_at={end.isoformat()!r}, poll_interval=0.3, "
        "skip_completed=True, outlets=[Asset('warehouse://dw/gaps'), AssetAlias('gaps')])\n"
    )
    result = run_dag(body, register_assets=True)
    assert result.ti_states == {"gaps": "success"}
    ids = result.xcom("gaps")
    assert len(ids) == 2
    events = asset_events(result.dag_id)
    [combined] = [extra for uri, extra, _ in events if uri == "warehouse://dw/gaps"]
    assert combined["backfill_ids"] == ids
    assert combined["data_interval_start"] == format_instant(start)
    assert combined["data_interval_end"] == format_instant(end)
    # Through the alias: one event per gap backfill, for the destination's asset.
    per_gap = [extra for uri, extra, _ in events if uri == destination_uri(gaps)]
    assert sorted(e["backfill_id"] for e in per_gap) == sorted(ids)
