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
        "status__0",  # ListField(child=ChoiceField): the index is in the attr
    )
    bad_second = [("status", "Failed"), ("status", "")]
    assert error(api.get(f"{export['id']}/runs", query=bad_second))[3:] == (
        '"" is not a valid choice.',
        "status__1",
    )


def test_lenient_ordering_and_dates(api, emu, export):
    old = emu.add_run(
        export["id"],
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00Z",
        created_at=emu.now() - timedelta(days=3),
    )
    new = emu.add_run(export["id"], "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z")
    newest_first = [new["id"], old["id"]]
    ids = lambda **q: [r["id"] for r in _runs(api, export, **q)["results"]]  # noqa: E731
    # OrderingFilter drops unknown terms; none left means the default -created_at
    assert ids(ordering="name") == newest_first
    assert ids(ordering="name,created_at") == list(reversed(newest_first))
    # blank after/before mean the defaults (-7d, now)
    assert ids(after="", before="") == newest_first
    # relative_date_parse never fails: what it cannot read is "now"
    assert ids(after="not a date") == []  # after=now: nothing created since
    assert ids(before="garbage") == newest_first  # before=now
    assert ids(after="2026-13-45") == []
    assert ids(after="-7days") == newest_first  # searched, not matched: "-7d"
    assert ids(after="ago: -4d") == newest_first  # found anywhere in the value
    assert ids(after="since -4d") == []  # the leftmost match wins: "s" (seconds), no number
    assert ids(after="-1dStart") == [new["id"]]
    assert ids(after="-2w") == newest_first
    assert ids(after="-1q") == newest_first
    assert ids(before="-2d") == [old["id"]]
    assert ids(after="-1y", before="-1hStart") == [old["id"]]


def test_relative_dates_apply_to_retrieve_retry_cancel(api, emu, export):
    run = emu.add_run(
        export["id"],
        "2025-06-01T00:00:00Z",
        "2025-06-01T01:00:00Z",
        status="Running",
        created_at=emu.now() - timedelta(days=40),
    )
    path = f"{export['id']}/runs/{run['id']}"
    assert api.get(path).status == 404  # older than the default -7d
    assert api.get(path, query={"after": "-2m"}).status == 200
    assert api.get(path, query={"after": "-1q"}).status == 200
    assert api.get(path, query={"after": "-1m"}).status == 404
    assert api.get(path, query={"after": "-1q", "status": "Completed"}).status == 404
    assert error(api.get(path, query={"status": "nope"}))[4] == "status__0"
    assert api.post(path + "/retry").status == 404
    assert api.post(path + "/retry", query={"after": "-6w"}).status == 201
    assert api.post(path + "/cancel", query={"after": "-1y"}).json == {"cancelled": True}


def test_runs_and_backfills_of_unknown_or_deleted_export(api, emu, export):
    run = emu.add_run(export["id"], "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")
    unknown = "11111111-1111-1111-1111-111111111111"
    empty = {"next": None, "previous": None, "results": []}
    # the nested viewsets filter on the parent id: an unknown export's lists are empty
    assert _runs(api, {"id": unknown}) == empty
    assert api.get(f"{unknown}/backfills").json == empty
    assert api.get(f"{unknown}/runs/{run['id']}").status == 404
    assert error(api.post(f"{unknown}/backfills", {"start_at": "x"}))[3] == (
        "BatchExport not found."
    )
    # ... and never on `deleted`: a deleted export's runs are still listed and readable
    assert api.delete(export["id"]).status == 204
    assert api.get(export["id"]).status == 404
    assert [r["id"] for r in _runs(api, export)["results"]] == [run["id"]]
    assert api.get(f"{export['id']}/runs/{run['id']}").status == 200
    assert api.get(f"{export['id']}/backfills").json == empty
    assert api.get(f"{export['id']}/logs").status == 404  # the export viewset hides it
    # another project's export: its lists are empty through project 1
    other = emu.create_batch_export(project_id=2)
    emu.add_run(other["id"], "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")
    assert _runs(api, other) == empty
    assert len(api.get(f"/api/projects/2/batch_exports/{other['id']}/runs").json["results"]) == 1


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
