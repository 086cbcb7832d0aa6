"""BatchExportRunSensor in real Airflow (dag.test) against the emulator over HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from dag_runner import run_dag
from support import runs_path

from airflow_provider_posthog_bx.core.runs import pick_run
from airflow_provider_posthog_bx.exceptions import PostHogInputError

UTC = timezone.utc


def hour_floor(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def test_run_sensor_waits_for_the_run_of_its_interval(
    airflow_db, posthog_emulator_default, posthog_connection, background, task_output
):
    emu = posthog_emulator_default
    names = (
        "ok_poke",
        "ok_defer",
        "later_poke",
        "retried",
        "old_poke",
        "old_defer",
        "failed_poke",
        "failed_defer",
        "waiting_soft",
        "waiting_soft_defer",
    )
    ids = {name: emu.create_batch_export(name=name)["id"] for name in names}
    start = hour_floor(emu.now()) - timedelta(hours=2)
    end = start + timedelta(hours=1)
    old_start = start - timedelta(days=30)
    old_end = old_start + timedelta(hours=1)
    month_ago = emu.now() - timedelta(days=30)

    runs = {"ok_poke": emu.add_run(ids["ok_poke"], start, end)}
    # Other intervals of the same export are not the run.
    emu.add_run(ids["ok_poke"], start - timedelta(hours=1), start, status="Failed")
    emu.add_run(ids["ok_poke"], start, end + timedelta(hours=1), status="Failed")

    # No run yet at the first check: the trigger keeps waiting, then sees it Running, then done.
    def add_later(name, **kwargs):
        def add():
            runs[name] = emu.add_run(ids[name], start, end, **kwargs)

        return add

    background.after_requests(runs_path(ids["ok_defer"]), 1, add_later("ok_defer", running_for=0.8))
    background.after_requests(
        runs_path(ids["later_poke"]), 2, add_later("later_poke", running_for=0.5)
    )
    # A retry: the older run failed, the newer one completed.
    emu.add_run(
        ids["retried"],
        start,
        end,
        status="Failed",
        latest_error="first try failed",
        created_at=emu.now() - timedelta(minutes=10),
    )
    runs["retried"] = emu.add_run(
        ids["retried"], start, end, created_at=emu.now() - timedelta(minutes=1)
    )
    # A month-old interval, created a month ago: outside PostHog's default 7-day window.
    for name in ("old_poke", "old_defer"):
        runs[name] = emu.add_run(ids[name], old_start, old_end, created_at=month_ago)
    emu.add_run(
        ids["failed_poke"],
        start,
        end,
        status="Failed",
        latest_error="NoSuchBucket: the bucket does not exist",
    )
    background.after_requests(
        runs_path(ids["failed_defer"]),
        2,
        lambda: emu.add_run(
            ids["failed_defer"],
            start,
            end,
            status="FailedBilling",
            latest_error="Billing limit reached for this team",
        ),
    )

    result = run_dag(f"""
from airflow_provider_posthog_bx.sensors import BatchExportRunSensor
interval = dict(data_interval_start={start.isoformat()!r}, data_interval_end={end.isoformat()!r})
old = dict(data_interval_start={old_start.isoformat()!r},
           data_interval_end={old_end.isoformat().replace("+00:00", "Z")!r})
common = dict(poke_interval=0.2, timeout=45)
ids = {ids!r}
BatchExportRunSensor(task_id="ok_poke", batch_export_id=ids["ok_poke"], **interval, **common)
BatchExportRunSensor(task_id="ok_defer", batch_export_id=ids["ok_defer"], deferrable=True,
                     **interval, **common)
BatchExportRunSensor(task_id="later_poke", batch_export_id=ids["later_poke"], **interval, **common)
BatchExportRunSensor(task_id="retried", batch_export_id=ids["retried"], **interval, **common)
BatchExportRunSensor(task_id="old_poke", batch_export_id=ids["old_poke"], **old, **common)
BatchExportRunSensor(task_id="old_defer", batch_export_id=ids["old_defer"], deferrable=True,
                     **old, **common)
BatchExportRunSensor(task_id="failed_poke", batch_export_id=ids["failed_poke"], **interval,
                     **common)
BatchExportRunSensor(task_id="failed_defer", batch_export_id=ids["failed_defer"], deferrable=True,
                     **interval, **common)
BatchExportRunSensor(task_id="waiting_soft", batch_export_id=ids["waiting_soft"], soft_fail=True,
                     **interval, **dict(common, timeout=0.8))
BatchExportRunSensor(task_id="waiting_soft_defer", batch_export_id=ids["waiting_soft_defer"],
                     soft_fail=True, deferrable=True, **interval, **dict(common, timeout=1.0))
""")
    background.check()
    out = task_output()
    assert result.ti_states == {
        "ok_poke": "success",
        "ok_defer": "success",
        "later_poke": "success",
        "retried": "success",
        "old_poke": "success",
        "old_defer": "success",
        "failed_poke": "failed",
        "failed_defer": "failed",
        "waiting_soft": "skipped",
        "waiting_soft_defer": "skipped",
    }, result.ti_states
    for name in ("ok_poke", "ok_defer", "later_poke", "retried", "old_poke", "old_defer"):
        run = result.xcom(name)
        assert run["id"] == runs[name]["id"], name
        assert run["status"] == "Completed"
    assert result.xcom("ok_poke", key="batch_export_url").endswith(ids["ok_poke"])
    # The deferred and the later-appearing waits saw "no run yet" and Running first.
    for name in ("ok_defer", "later_poke"):
        assert emu.count("GET", runs_path(ids[name])) >= 3, name
    # Old intervals are looked up by data interval, not in the 7-day created_at window.
    for request in [r for r in emu.requests if ids["old_poke"] in r.path]:
        assert request.query["ordering"] == ["-data_interval_start"]
        assert request.query["start"] == [old_start.isoformat().replace("+00:00", "Z")]
        assert request.query["end"] == [old_end.isoformat().replace("+00:00", "Z")]
        assert "after" not in request.query
    assert "ended Failed in PostHog: NoSuchBucket: the bucket does not exist" in out
    assert "ended FailedBilling in PostHog: Billing limit reached for this team" in out


def test_pick_run_matches_exact_bounds_and_prefers_the_newest():
    start = datetime(2026, 11, 1, 10, tzinfo=UTC)
    end = start + timedelta(hours=1)

    def run(id_, s, e, created):
        return {
            "id": id_,
            "data_interval_start": s,
            "data_interval_end": e,
            "created_at": created,
            "status": "Completed",
        }

    runs = [
        run("wider", "2026-11-01T10:00:00Z", "2026-11-01T12:00:00Z", "2026-11-01T12:05:00Z"),
        run("older", "2026-11-01T10:00:00Z", "2026-11-01T11:00:00Z", "2026-11-01T11:05:00Z"),
        run("newer", "2026-11-01T10:00:00Z", "2026-11-01T11:00:00Z", "2026-11-02T09:00:00.5Z"),
        run("open", None, "2026-11-01T11:00:00Z", "2026-11-03T00:00:00Z"),
    ]
    assert pick_run(runs, start, end)["id"] == "newer"
    assert pick_run(runs[:2], start, end)["id"] == "older"
    assert pick_run(runs[:1], start, end) is None


def test_interval_is_checked_before_any_request(
    airflow_db, posthog_emulator_default, posthog_connection
):
    from airflow_provider_posthog_bx.sensors import BatchExportRunSensor

    export = posthog_emulator_default.create_batch_export()["id"]
    cases = [
        (
            dict(data_interval_start="None", data_interval_end="None"),
            "data_interval_start is empty: this DAG run has no data interval",
        ),
        (
            dict(data_interval_start="2026-01-01T00:00:00", data_interval_end="2026-01-01T01:00Z"),
            "data_interval_start must be timezone-aware (got '2026-01-01T00:00:00')",
        ),
        (
            dict(data_interval_start="2026-01-01T01:00:00Z", data_interval_end="2026-01-01T01:00Z"),
            "equals data_interval_end",
        ),
        (
            dict(data_interval_start="2026-01-01T02:00:00Z", data_interval_end="2026-01-01T01:00Z"),
            "must be before data_interval_end",
        ),
    ]
    for kwargs, message in cases:
        sensor = BatchExportRunSensor(task_id="s", batch_export_id=export, **kwargs)
        with pytest.raises(PostHogInputError) as raised:
            sensor.execute({})
        assert message in str(raised.value)
    assert posthog_emulator_default.requests == []
