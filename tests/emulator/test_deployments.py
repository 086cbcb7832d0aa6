"""Older PostHog deployments: workflow ids for backfill ids, and no backfills routes at all."""

from __future__ import annotations

import uuid

import pytest

from airflow_provider_posthog_bx.testing import PostHogEmulator

from .conftest import Api, error

pytestmark = pytest.mark.emulator

RANGE = {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-01T03:00:00Z"}
CATCH_ALL = (404, "invalid_request", "not_found", "Endpoint not found.", None)


def _workflow_id(export_id: str) -> str:
    return f"{export_id}-Backfill-2026-01-01T00:00:00+00:00-2026-01-01T03:00:00+00:00"


@pytest.fixture
def legacy(posthog_emulator):
    def make(mode: str) -> tuple[PostHogEmulator, Api, dict]:
        emu = posthog_emulator(
            backfill_create_delay=5,
            backfill_starting_seconds=5,
            run_seconds=5,
            legacy_deployment=mode,
        )
        return emu, Api(emu), emu.create_batch_export(interval="hour")

    return make


def test_constructor_kwargs_and_validation(posthog_emulator):
    emu = posthog_emulator(legacy_backfill_route="405")
    assert emu.legacy_backfill_route == "405" and emu.legacy_deployment is None
    export = emu.create_batch_export()
    assert error(Api(emu).post(f"{export['id']}/backfills", RANGE))[:3] == (
        405,
        "invalid_request",
        "method_not_allowed",
    )
    assert posthog_emulator(legacy_deployment="no-backfills").legacy_deployment == "no-backfills"
    with pytest.raises(ValueError, match="legacy_deployment must be one of"):
        PostHogEmulator(legacy_deployment="2023")
    with pytest.raises(ValueError, match="legacy_backfill_route must be one of"):
        PostHogEmulator(legacy_backfill_route="500")
    emu.legacy_deployment = "workflow-ids"
    assert emu.legacy_deployment == "workflow-ids"


@pytest.mark.parametrize("route", ["backfill", "backfills"])
def test_workflow_ids_create_answers_200_with_temporal_workflow_id(legacy, route):
    emu, api, export = legacy("workflow-ids")
    resp = api.post(f"{export['id']}/{route}", RANGE)
    assert resp.status == 200 and resp.json == {"backfill_id": _workflow_id(export["id"])}
    workflow_id = resp.json["backfill_id"]
    [row] = emu.backfills(export["id"])
    assert row["id"] != workflow_id and str(uuid.UUID(row["id"])) == row["id"]

    emu.advance(5.05)  # the row now exists, under its own UUID
    by_workflow_id = f"{export['id']}/backfills/{workflow_id}"
    assert error(api.get(by_workflow_id)) == (
        404,
        "invalid_request",
        "not_found",
        "Not found.",
        None,
    )
    assert api.post(by_workflow_id + "/cancel").status == 404
    listed = api.get(f"{export['id']}/backfills").json["results"]
    assert [(b["id"], b["start_at"], b["end_at"]) for b in listed] == [
        (row["id"], "2026-01-01T00:00:00Z", "2026-01-01T03:00:00Z")
    ]
    assert api.get(f"{export['id']}/backfills/{row['id']}").json["status"] == "Starting"

    emu.advance(5)  # Running: its run carries the row's UUID, not the workflow id
    runs = api.get(f"{export['id']}/runs").json["results"]
    assert [(r["status"], r["backfill"]) for r in runs] == [("Running", row["id"])]
    assert api.post(f"{export['id']}/backfills/{row['id']}/cancel").json == {"cancelled": True}
    assert emu.get_backfill(row["id"])["status"] == "Cancelled"


def test_workflow_ids_run_retry_answers_200(legacy):
    emu, api, export = legacy("workflow-ids")
    run = emu.add_run(export["id"], "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")
    resp = api.post(f"{export['id']}/runs/{run['id']}/retry")
    assert resp.status == 200
    assert resp.json == {
        "backfill_id": f"{export['id']}-Backfill-2026-01-01T00:00:00+00:00"
        "-2026-01-01T01:00:00+00:00"
    }


def test_newest_create_and_retry_answer_201_with_uuid(api, emu, export):
    resp = api.post(f"{export['id']}/backfills", RANGE)
    assert resp.status == 201 and str(uuid.UUID(resp.json["backfill_id"]))
    run = emu.add_run(export["id"], "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")
    assert api.post(f"{export['id']}/runs/{run['id']}/retry").status == 201


def test_no_backfills_routes_fall_through_to_the_catch_all(legacy):
    emu, api, export = legacy("no-backfills")
    emu.legacy_backfill_route = "405"  # does not bring the backfills routes back
    some_id = "00000000-0000-0000-0000-000000000000"
    base = f"{export['id']}/backfills"
    for method, path in [
        ("GET", base),
        ("POST", base),
        ("GET", f"{base}/{some_id}"),
        ("POST", f"{base}/{some_id}/cancel"),
        ("DELETE", f"{base}/{some_id}"),
    ]:
        assert error(api.call(method, path, RANGE if method == "POST" else None)) == CATCH_ALL
    assert error(api.get(base, key=None)) == CATCH_ALL  # before authentication
    assert emu.backfills(export["id"]) == []
    assert api.get(export["id"]).status == 200  # everything else is served


def test_no_backfills_follow_the_legacy_backfill_through_its_runs(legacy):
    emu, api, export = legacy("no-backfills")
    resp = api.post(f"{export['id']}/backfill/", RANGE)
    assert resp.status == 200 and resp.json == {"backfill_id": _workflow_id(export["id"])}
    assert emu.backfill_creates(export["id"]) == 1
    emu.advance(10.05)
    runs = api.get(f"{export['id']}/runs").json["results"]
    assert len(runs) == 1 and "backfill" not in runs[0]  # no such column yet
    assert "backfill" not in api.get(f"{export['id']}/runs/{runs[0]['id']}").json
    assert "backfill" not in api.get(export["id"]).json["latest_runs"][0]
    emu.advance(15)
    query = {"ordering": "data_interval_start", "start": "2026-01-01T00:00:00Z"}
    runs = api.get(f"{export['id']}/runs", query=query).json["results"]
    assert [(r["data_interval_start"], r["status"]) for r in runs] == [
        ("2026-01-01T00:00:00Z", "Completed"),
        ("2026-01-01T01:00:00Z", "Completed"),
        ("2026-01-01T02:00:00Z", "Completed"),
    ]
    [row] = emu.backfills(export["id"])  # the row exists; only the API has no route to it
    assert row["status"] == "Completed"
    assert emu.runs(export["id"])[0]["backfill"] == row["id"]  # the Python API still tells


def test_legacy_backfill_route_alone_returns_the_row_uuid(api, emu, export):
    emu.legacy_backfill_route = "catch-all"
    bid = api.post(f"{export['id']}/backfill", RANGE).json["backfill_id"]
    assert bid == emu.backfills(export["id"])[0]["id"]
