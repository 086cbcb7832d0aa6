"""Runs: list filters, cursor pagination, the 7-day window, retrieve, retry and cancel."""

from __future__ import annotations

from datetime import timedelta

import pytest

from .conftest import error

pytestmark = pytest.mark.emulator


def _runs(api, export, **query):
    resp = api.get(f"{export['id']}/runs", query=query)
    assert resp.status == 200, resp.raw
    return resp.json


def test_run_shape_and_appear_after_running_for(api, emu, export):
    run = emu.add_run(
        export["id"],
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00Z",
        appear_after=2,
        running_for=3,
        records_completed=7,
    )
    assert _runs(api, export)["results"] == []
    emu.advance(2.01)
    [listed] = _runs(api, export)["results"]
    assert list(listed) == [
        "id",
        "status",
        "records_completed",
        "records_failed",
        "latest_error",
        "data_interval_start",
        "data_interval_end",
        "cursor",
        "created_at",
        "finished_at",
        "last_updated_at",
        "records_total_count",
        "bytes_exported",
        "batch_export",
        "backfill",
    ]
    assert (
        listed["id"] == run["id"] and listed["status"] == "Running" and listed["backfill"] is None
    )
    emu.advance(3)
    done = api.get(f"{export['id']}/runs/{run['id']}").json
    assert done["status"] == "Completed" and done["records_completed"] == 7
    assert done["finished_at"] is not None
    assert len(emu.logs(export["id"])) == 2


def test_status_filter_and_unknown_status(api, emu, export):
    emu.add_run(
        export["id"],
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00Z",
        status="Failed",
        latest_error="boom",
    )
    emu.add_run(export["id"], "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z")
    emu.add_run(export["id"], "2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z", status="TimedOut")
    got = _runs(api, export, status=["Failed", "TimedOut"])["results"]
    assert sorted(r["status"] for r in got) == ["Failed", "TimedOut"]
    assert [r["latest_error"] for r in got if r["status"] == "Failed"] == ["boom"]
    assert error(api.get(f"{export['id']}/runs", query={"status": "Bogus"})) == (
        400,
        "validation_error",
        "invalid_choice",
        '"Bogus" is not a valid choice.',
        "status",
    )
    assert error(api.get(f"{export['id']}/runs", query={"ordering": "name"}))[4] == "ordering"


def test_seven_day_window_and_old_run_retrieve(api, emu, export):
    old = emu.add_run(
        export["id"],
        "2025-01-01T00:00:00Z",
        "2025-01-01T01:00:00Z",
        created_at=emu.now() - timedelta(days=10),
    )
    new = emu.add_run(export["id"], "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")
    assert [r["id"] for r in _runs(api, export)["results"]] == [new["id"]]
    assert {r["id"] for r in _runs(api, export, after="-30d")["results"]} == {old["id"], new["id"]}
    assert [r["id"] for r in _runs(api, export, after="-30d", before="-8d")["results"]] == [
        old["id"]
    ]
    assert api.get(f"{export['id']}/runs/{old['id']}").status == 404
    assert api.get(f"{export['id']}/runs/{old['id']}", query={"after": "-30d"}).status == 200
    iso = (emu.now() - timedelta(days=11)).isoformat()
    assert len(_runs(api, export, after=iso)["results"]) == 2
    # data_interval_start ordering: start/end apply and after/before are ignored
    by_interval = _runs(
        api, export, ordering="-data_interval_start", start="2024-12-01T00:00:00Z", after="-1h"
    )["results"]
    assert [r["id"] for r in by_interval] == [new["id"], old["id"]]
    ended = _runs(
        api,
        export,
        ordering="data_interval_start",
        start="2024-12-01T00:00:00Z",
        end="2025-06-01T00:00:00Z",
    )["results"]
    assert [r["id"] for r in ended] == [old["id"]]


def test_cursor_pagination_past_100(api, emu, export):
    ids = []
    for i in range(150):
        start = emu.now().replace(microsecond=0) - timedelta(hours=200 - i)
        ids.append(emu.add_run(export["id"], start, start + timedelta(hours=1))["id"])
        emu.advance(0.001)
    first = _runs(api, export)
    assert set(first) == {"next", "previous", "results"} and len(first["results"]) == 100
    assert first["previous"] is None and "cursor=" in first["next"]
    assert first["results"][0]["id"] == ids[-1]
    emu.add_run(export["id"], "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")  # newer: no shift
    second = api.get(first["next"][len(emu.url) :]).json
    assert len(second["results"]) == 50 and second["next"] is None
    got = [r["id"] for r in first["results"] + second["results"]]
    assert got == list(reversed(ids))


def test_retry_and_cancel(api, emu, export):
    run = emu.add_run(
        export["id"],
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00Z",
        status="Failed",
        latest_error="x",
    )
    resp = api.post(f"{export['id']}/runs/{run['id']}/retry")
    assert resp.status == 201
    assert resp.json == {
        "backfill_id": f"{export['id']}-Backfill-2026-01-01T00:00:00+00:00-"
        "2026-01-01T01:00:00+00:00"
    }
    [b] = emu.backfills(export["id"])
    assert (b["start_at"], b["end_at"]) == ("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")
    emu.advance(20)
    assert emu.get_backfill(b["id"])["status"] == "Completed"
    assert error(api.post(f"{export['id']}/runs/{run['id']}/cancel")) == (
        400,
        "validation_error",
        "invalid_input",
        "Cannot cancel a run that is in 'Failed' status",
        None,
    )
    running = emu.add_run(
        export["id"], "2026-01-02T00:00:00Z", "2026-01-02T01:00:00Z", status="Running"
    )
    assert api.post(f"{export['id']}/runs/{running['id']}/cancel").json == {"cancelled": True}
    assert api.get(f"{export['id']}/runs/{running['id']}").json["status"] == "Cancelled"
    assert api.get(f"{export['id']}/runs/not-a-uuid").status == 404
