"""Backfill create validation, lifecycle, scripted outcomes, cancel, cap, legacy routes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from airflow_provider_posthog_bx.testing import PostHogEmulator

from .conftest import Api, error

pytestmark = pytest.mark.emulator

RANGE = {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-01T03:00:00Z"}
RANGE_CONFIG = {"bucket_name": "b", "region": "us-east-1", "prefix": "p/"}


def _create(api, export, body=RANGE):
    return api.post(f"{export['id']}/backfills", body)


def test_lifecycle_404_window_starting_running_completed(api, emu, export):
    resp = _create(api, export)
    assert resp.status == 201 and set(resp.json) == {"backfill_id"}
    bid = resp.json["backfill_id"]
    path = f"{export['id']}/backfills/{bid}"
    assert error(api.get(path)) == (404, "invalid_request", "not_found", "Not found.", None)
    assert api.get(f"{export['id']}/backfills").json["results"] == []
    assert emu.get_backfill(bid)["status"] == "Starting"

    emu.advance(5.05)
    b = api.get(path).json
    assert list(b) == [
        "id",
        "progress",
        "start_at",
        "end_at",
        "status",
        "created_at",
        "finished_at",
        "last_updated_at",
        "total_records_count",
        "adjusted_start_at",
        "team",
        "batch_export",
    ]
    assert b["status"] == "Starting" and b["adjusted_start_at"] is None
    assert b["progress"] == {"total_runs": 3, "finished_runs": 0, "progress": 0.0}

    emu.advance(5)
    b = api.get(path).json
    assert b["status"] == "Running" and b["adjusted_start_at"] == "2026-01-01T00:00:00Z"
    assert b["total_records_count"] == 300
    runs = api.get(f"{export['id']}/runs").json["results"]
    assert [(r["status"], r["backfill"]) for r in runs] == [("Running", bid)]

    emu.advance(5)
    assert api.get(path).json["progress"] == {"total_runs": 3, "finished_runs": 1, "progress": 0.3}
    emu.advance(10)
    b = api.get(path).json
    assert b["status"] == "Completed" and b["finished_at"] is not None
    assert b["progress"] == {"total_runs": 3, "finished_runs": 3, "progress": 1.0}
    runs = api.get(
        f"{export['id']}/runs",
        query={"ordering": "data_interval_start", "start": "2025-12-01T00:00:00Z"},
    ).json["results"]
    assert [r["data_interval_start"] for r in runs] == [
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00Z",
        "2026-01-01T02:00:00Z",
    ]
    assert all(r["status"] == "Completed" and r["backfill"] == bid for r in runs)
    messages = [e["message"] for e in emu.logs(export["id"])]
    assert len(messages) == 6
    assert messages[-1] == (
        "Batch export for range 2026-01-01T00:00:00+00:00 - 2026-01-01T01:00:00+00:00 starting."
    )
    assert messages[0].endswith("finished successfully: 100 records exported.")


def test_partial_interval_skipped_and_zero_runs(api, emu, export):
    bid = _create(
        api, export, {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-01T00:30:00Z"}
    ).json["backfill_id"]
    emu.advance(10.05)
    b = emu.get_backfill(bid)
    assert b["status"] == "Completed" and b["total_records_count"] == 0
    assert emu.runs(export["id"]) == []


def test_fail_run_backfill_still_completed(api, emu, export):
    emu.fail_run(export["id"], "2026-01-01T01:30:00Z", error="Destination unreachable")
    bid = _create(api, export).json["backfill_id"]
    emu.advance(30)
    assert emu.get_backfill(bid)["status"] == "Completed"
    assert emu.get_backfill(bid)["total_records_count"] == 200
    by_start = {r["data_interval_start"]: r for r in emu.runs(export["id"])}
    failed = by_start["2026-01-01T01:00:00Z"]
    assert failed["status"] == "Failed" and failed["latest_error"] == "Destination unreachable"
    errors = [e for e in emu.logs(export["id"]) if e["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0]["message"].endswith("failed: Destination unreachable")


@pytest.mark.parametrize("status", ["Failed", "Cancelled"])
def test_script_next_backfill(api, emu, export, status):
    emu.script_next_backfill(export["id"], status=status, after_runs=1)
    bid = _create(api, export).json["backfill_id"]
    emu.advance(30)
    b = emu.get_backfill(bid)
    assert b["status"] == status and b["progress"] is None and b["finished_at"] is not None
    assert [r["status"] for r in emu.runs(export["id"])] == ["Completed"]
    second = _create(api, export).json["backfill_id"]
    emu.advance(30)
    assert emu.get_backfill(second)["status"] == "Completed"


def test_cancel_backfill_and_its_run(api, emu, export):
    bid = _create(api, export).json["backfill_id"]
    assert api.post(f"{export['id']}/backfills/{bid}/cancel").status == 404  # not created yet
    emu.advance(10.05)
    assert api.post(f"{export['id']}/backfills/{bid}/cancel").json == {"cancelled": True}
    assert emu.get_backfill(bid)["status"] == "Cancelled"
    assert [r["status"] for r in emu.runs(export["id"])] == ["Cancelled"]
    assert error(api.post(f"{export['id']}/backfills/{bid}/cancel")) == (
        400,
        "validation_error",
        "invalid_input",
        "Cannot cancel a backfill that is in 'Cancelled' status",
        None,
    )
    emu.advance(60)
    assert emu.get_backfill(bid)["status"] == "Cancelled"


def test_end_backfill(api, emu, export):
    bid = _create(api, export).json["backfill_id"]
    emu.advance(12)
    assert emu.end_backfill(bid, "Terminated")["status"] == "Terminated"


def test_concurrency_cap_429_without_retry_after(api, emu, export):
    for _ in range(5):
        assert _create(api, export).status == 201
    resp = _create(api, export)
    assert error(resp) == (
        429,
        "server_error",
        "too_many_concurrent_backfills",
        "This team already has 5 batch export backfills running. Wait for some to finish or "
        "cancel them before creating more.",
        None,
    )
    assert "retry-after" not in resp.headers
    other = emu.create_batch_export(project_id=2)
    assert api.post(f"/api/projects/2/batch_exports/{other['id']}/backfills", RANGE).status == 201


def _msg(resp):
    status, type_, code, detail, attr = error(resp)
    assert (status, type_, code, attr) == (400, "validation_error", "invalid_input", None)
    return detail


def test_create_validation_messages(api, emu, export):
    missing = api.post("00000000-0000-0000-0000-000000000000/backfills", RANGE)
    assert error(missing) == (404, "invalid_request", "not_found", "BatchExport not found.", None)
    assert _msg(_create(api, export, {"start_at": None, "end_at": RANGE["end_at"]})) == (
        "Backfilling from the beginning of time is not enabled for this team."
    )
    assert _msg(_create(api, export, {"start_at": "yesterday", "end_at": RANGE["end_at"]})) == (
        "Input yesterday is not a valid ISO formatted datetime."
    )
    assert _msg(
        _create(api, export, {"start_at": "2026-01-01T00:00:00", "end_at": RANGE["end_at"]})
    ) == ("Input 2026-01-01T00:00:00 is naive.")
    assert _msg(
        _create(api, export, {"start_at": RANGE["end_at"], "end_at": RANGE["start_at"]})
    ) == ("The initial backfill datetime 'start_at' must be before 'end_at'")
    future = (emu.now() + timedelta(days=2)).replace(microsecond=0)
    assert _msg(
        _create(api, export, {"start_at": RANGE["start_at"], "end_at": future.isoformat()})
    ) == (f"The provided 'end_at' ({future.isoformat()}) is in the future")
    assert error(_create(api, export, {"start_at": RANGE["start_at"]})) == (
        500,
        "server_error",
        "error",
        "A server error occurred.",
        None,
    )


def test_daily_and_weekly_date_rules(api, emu):
    daily = emu.create_batch_export(interval="day", offset_hour=6, timezone="Europe/Berlin")
    assert _msg(
        _create(api, daily, {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-03"})
    ) == (
        "Input '2026-01-01T00:00:00Z' is not a valid ISO formatted date. Daily or weekly batch "
        "export backfills expect only the date component, but a time was included."
    )
    assert _msg(_create(api, daily, {"start_at": "Jan 1", "end_at": "2026-01-03"})) == (
        "Input 'Jan 1' is not a valid ISO formatted date."
    )
    bid = _create(api, daily, {"start_at": "2026-01-01", "end_at": "2026-01-03"}).json[
        "backfill_id"
    ]
    b = emu.get_backfill(bid)
    assert (b["start_at"], b["end_at"]) == ("2026-01-01T05:00:00Z", "2026-01-03T05:00:00Z")
    weekly = emu.create_batch_export(interval="week", offset_day=1)  # Monday
    assert _msg(_create(api, weekly, {"start_at": "2026-01-04", "end_at": "2026-01-12"})) == (
        "Input 2026-01-04 is not on the correct day of the week for this batch export. "
        "2026-01-04 is a Sunday but this batch export is configured to run weekly on Monday."
    )
    assert _create(api, weekly, {"start_at": "2026-01-05", "end_at": "2026-01-12"}).status == 201


def test_list_pagination_past_50_and_ordering():
    with PostHogEmulator(
        backfill_create_delay=0,
        backfill_starting_seconds=0,
        run_seconds=0,
        max_concurrent_backfills=100,
    ) as emu:
        api, export = Api(emu), emu.create_batch_export()
        ids = []
        for day in range(1, 61):
            body = {
                "start_at": f"2025-11-{(day % 28) + 1:02d}T00:00:00Z",
                "end_at": f"2025-11-{(day % 28) + 1:02d}T01:00:00Z",
            }
            ids.append(_create(api, export, body).json["backfill_id"])
        first = api.get(f"{export['id']}/backfills").json
        assert set(first) == {"next", "previous", "results"} and len(first["results"]) == 50
        assert first["results"][0]["id"] == ids[-1]  # -created_at
        second = api.get(first["next"][len(emu.url) :]).json
        assert len(second["results"]) == 10 and second["next"] is None
        assert {b["id"] for b in first["results"] + second["results"]} == set(ids)
        back = api.get(second["previous"][len(emu.url) :]).json
        assert [b["id"] for b in back["results"]] == [b["id"] for b in first["results"]]
        asc = api.get(f"{export['id']}/backfills", query={"ordering": "start_at"}).json["results"]
        assert asc[0]["start_at"] == "2025-11-01T00:00:00Z"
        assert api.get(f"{export['id']}/backfills", query={"cursor": "garbage!"}).status == 404


def test_unpause_with_backfill_covers_pause_window(api, emu, export):
    api.post(export["id"] + "/pause")
    paused_at = emu.get_batch_export(export["id"])["last_paused_at"]
    emu.advance(3 * 3600 + 60)
    assert api.post(export["id"] + "/unpause", {"backfill": True}).json == {"paused": False}
    [b] = emu.backfills(export["id"])
    assert b["start_at"] == paused_at
    emu.advance(100)
    assert emu.get_backfill(b["id"])["status"] == "Completed"
    assert len(emu.runs(export["id"])) == 3


def test_delete_cancels_in_flight_backfill(api, emu, export):
    bid = _create(api, export).json["backfill_id"]
    emu.advance(11)
    assert api.delete(export["id"]).status == 204
    assert emu.get_backfill(bid)["status"] == "Cancelled"
    assert all(r["status"] == "Cancelled" for r in emu.runs(export["id"]))


def test_legacy_route_405(api, emu, export):
    emu.legacy_backfill_route = "405"
    assert error(_create(api, export)) == (
        405,
        "invalid_request",
        "method_not_allowed",
        'Method "POST" not allowed.',
        None,
    )
    resp = api.post(f"{export['id']}/backfill", RANGE)
    assert resp.status == 200
    bid = resp.json["backfill_id"]
    emu.advance(30)
    assert api.get(f"{export['id']}/backfills/{bid}").json["status"] == "Completed"


def test_legacy_route_404_html(api, emu, export):
    assert api.post(f"{export['id']}/backfill", RANGE).status == 404  # newest: action removed
    emu.legacy_backfill_route = "404"
    resp = _create(api, export)
    assert resp.status == 404 and resp.headers["content-type"].startswith("text/html")
    assert b"<h1>Not Found</h1>" in resp.raw
    assert api.post(f"{export['id']}/backfill/", RANGE).status == 200


def test_legacy_route_catch_all(api, emu, export):
    emu.legacy_backfill_route = "catch-all"
    assert error(_create(api, export)) == (
        404,
        "invalid_request",
        "not_found",
        "Endpoint not found.",
        None,
    )
    assert api.post(f"{export['id']}/backfill/", RANGE).status == 200


def test_row_hidden_from_list_get_and_cancel_until_create_delay(api, emu, export):
    older = _create(api, export).json["backfill_id"]
    emu.advance(5.05)  # the first row exists
    emu.backfill_create_delay = 30
    assert emu.backfill_create_delay == 30
    newer = _create(api, export, {**RANGE, "start_at": "2026-01-01T01:00:00Z"}).json["backfill_id"]

    def listed():
        return [b["id"] for b in api.get(f"{export['id']}/backfills").json["results"]]

    for _ in range(2):  # stays hidden, not just on the first read
        assert listed() == [older]
        assert api.get(f"{export['id']}/backfills/{newer}").status == 404
        assert api.post(f"{export['id']}/backfills/{newer}/cancel").status == 404
        emu.advance(29.9 / 2)
    emu.advance(0.2)
    assert listed() == [newer, older]
    assert api.get(f"{export['id']}/backfills/{newer}").json["status"] == "Starting"
    with pytest.raises(ValueError):
        emu.backfill_create_delay = -1


def test_backfill_creates_counts_requests_that_reached_the_handler(api, emu, export):
    other = emu.create_batch_export(name="other")
    emu.add_api_key("phx_ro", scopes=["batch_export:read"])
    assert _create(api, export).status == 201
    assert _create(api, export, {"start_at": "nope", "end_at": RANGE["end_at"]}).status == 400
    assert api.post(f"{export['id']}/backfills", RANGE, key=None).status == 401
    assert api.post(f"{export['id']}/backfills", RANGE, key="phx_ro").status == 403
    emu.add_fault("POST", r"/backfills/?$", status=502)  # answered by the proxy: not PostHog
    assert _create(api, export).status == 502
    emu.add_fault("POST", r"/backfills/?$", status=502, process=True)  # done, answer lost
    assert _create(api, export).status == 502
    assert _create(api, other).status == 201
    emu.legacy_backfill_route = "405"
    assert _create(api, export).status == 405  # no create action on that deployment
    assert api.post(f"{export['id']}/backfill", RANGE).status == 200
    assert emu.backfill_creates(export["id"]) == 4  # 201, 400, lost 502, legacy 200
    assert emu.backfill_creates(other["id"]) == 1 and emu.backfill_creates() == 5
    assert emu.count("POST", rf"{export['id']}/backfills?/?$") == 8  # what the client sent
    assert len(emu.backfills(export["id"])) == 3
    assert len(emu.backfills(export["id"], RANGE["start_at"], RANGE["end_at"])) == 3
    assert emu.backfills(export["id"], start_at="2026-01-01T00:00:00+00:00", end_at=None)
    assert emu.backfills(export["id"], end_at="2026-01-01T02:00:00Z") == []


@pytest.mark.parametrize(
    "destination",
    [
        {"type": "NoOp", "config": {}},
        {"type": "HTTP", "config": {"url": "https://us.i.posthog.com/batch/", "token": "t"}},
    ],
)
def test_open_ended_backfill_on_noop_and_http_is_201(api, emu, destination):
    created = api.post("", {"name": "open", "interval": "hour", "destination": destination})
    assert created.status == 201, created.raw
    export = created.json
    start = (emu.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    resp = _create(api, export, {"start_at": start.isoformat()})
    assert resp.status == 201 and set(resp.json) == {"backfill_id"}
    emu.advance(10)
    row = api.get(f"{export['id']}/backfills/{resp.json['backfill_id']}").json
    assert row["start_at"] == start.isoformat().replace("+00:00", "Z") and row["end_at"] is None
    emu.advance(60)
    assert api.get(f"{export['id']}/backfills/{row['id']}").json["status"] == "Completed"
    # backfill until caught up: the whole hours from start_at up to the create
    assert len(emu.runs(export["id"])) == 3
    # still a 500 for any other destination (BatchExportWithNoEndNotAllowedError escapes)
    s3 = emu.create_batch_export()
    assert error(_create(api, s3, {"start_at": start.isoformat()}))[0] == 500


def test_unpause_backfill_of_an_export_created_paused_starts_at_the_earliest_data(api, emu):
    export = api.post(
        "",
        {
            "name": "paused from the start",
            "interval": "hour",
            "paused": "on",  # DRF's boolean words
            "destination": {"type": "AwsS3", "integration": 1, "config": RANGE_CONFIG},
        },
    ).json
    assert export["paused"] is True and export["last_paused_at"] is None
    emu.advance(2 * 3600 + 60)
    assert api.post(export["id"] + "/unpause", {"backfill": "1"}).json == {"paused": False}
    [b] = emu.backfills(export["id"])
    # unpause_batch_export: last_paused_at (None) -> last_updated_at, a from-the-beginning
    # backfill whose start the workflow narrows to the earliest data
    assert (
        b["start_at"] is None
        and b["end_at"] == emu.get_batch_export(export["id"])["last_updated_at"]
    )
    emu.advance(100)
    done = emu.get_backfill(b["id"])
    created = emu.get_batch_export(export["id"])["created_at"]
    assert done["status"] == "Completed"
    assert done["adjusted_start_at"] == created[:13] + ":00:00Z"  # the hour it was created in
    first = datetime.fromisoformat(done["adjusted_start_at"].replace("Z", "+00:00"))
    last = datetime.fromisoformat(done["end_at"].replace("Z", "+00:00"))
    hours = (last - first) // timedelta(hours=1)
    assert hours in (2, 3) and len(emu.runs(export["id"])) == hours
