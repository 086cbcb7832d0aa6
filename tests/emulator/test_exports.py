"""Batch export CRUD, pause/unpause, routing variants and export pagination."""

from __future__ import annotations

import re

import pytest

from .conftest import Api, error

pytestmark = pytest.mark.emulator

# Integration 1 is the aws-s3 Integration the emulator seeds in project 1.
S3 = {
    "type": "AwsS3",
    "integration_id": 1,
    "config": {"bucket_name": "b", "region": "eu-west-1", "prefix": "p/"},
}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")


def create(api: Api, **fields):
    body = {"name": "exp", "destination": S3, "interval": "hour", **fields}
    return api.post("", body)


def test_create_retrieve_shape_and_secrets_stripped(api, emu):
    assert emu.integration_id("AwsS3") == 1
    resp = create(api)
    assert resp.status == 201
    exp = resp.json
    assert list(exp) == [
        "id",
        "team_id",
        "name",
        "model",
        "destination",
        "interval",
        "paused",
        "created_at",
        "last_updated_at",
        "last_paused_at",
        "start_at",
        "end_at",
        "latest_runs",
        "hogql_query",
        "hogql_modifiers",
        "primary_key",
        "version_key",
        "incremental_mode",
        "schema",
        "filters",
        "timezone",
        "offset_day",
        "offset_hour",
    ]
    assert exp["model"] == "events" and exp["team_id"] == 1 and exp["paused"] is False
    assert exp["destination"] == {
        "type": "AwsS3",
        "config": {
            "bucket_name": "b",
            "region": "eu-west-1",
            "prefix": "p/",
            "legacy_parquet_extension": False,  # new object-storage exports opt in to .parquet
        },
        "integration": 1,
    }
    assert ISO_Z.match(exp["created_at"])
    got = api.get(exp["id"])
    assert got.status == 200 and got.json == exp
    postgres = {
        "type": "Postgres",
        "integration": emu.integration_id("Postgres"),
        "config": {"database": "d", "user": "u", "password": "pw", "exclude_events": ["$x"]},
    }
    pg = create(api, destination=postgres).json["destination"]
    assert pg["config"] == {"database": "d", "exclude_events": ["$x"]}  # user/password stripped
    http = {"type": "HTTP", "config": {"url": "https://eu.i.posthog.com/batch/", "token": "t"}}
    assert create(api, destination=http).json["destination"]["config"] == {
        "url": "https://eu.i.posthog.com/batch/"
    }


def test_create_validation_errors(api, emu):
    assert error(api.post("", {"destination": S3, "interval": "hour"})) == (
        400,
        "validation_error",
        "required",
        "This field is required.",
        "name",
    )
    assert error(api.post("", {"name": "x", "interval": "hour"}))[4] == "destination"
    assert error(create(api, destination={"type": "Nope", "config": {}})) == (
        400,
        "validation_error",
        "invalid_choice",
        '"Nope" is not a valid choice.',
        "destination__type",
    )
    assert error(create(api, interval="month")) == (
        400,
        "validation_error",
        "invalid_choice",
        '"month" is not a valid choice.',
        "interval",
    )
    assert error(create(api, interval="hour", offset_day=1)) == (
        400,
        "validation_error",
        "invalid_input",
        "offset_day is not applicable for non-weekly intervals",
        "offset_day",
    )
    assert error(create(api, interval="hour", offset_hour=1)) == (
        400,
        "validation_error",
        "invalid_input",
        "offset_hour is not applicable for non-daily/weekly intervals",
        "offset_hour",
    )
    assert error(create(api, interval="week", offset_day=7)) == (
        400,
        "validation_error",
        "max_value",
        "Ensure this value is less than or equal to 6.",
        "offset_day",
    )
    ok = create(api, interval="week", offset_day=2, offset_hour=5).json
    assert (ok["offset_day"], ok["offset_hour"]) == (2, 5)
    assert create(api, interval="day").json["offset_day"] is None


def test_high_frequency_behind_a_flag_off_by_default(posthog_emulator):
    off = create(Api(posthog_emulator()), interval="every 15 minutes")
    assert error(off) == (
        403,
        "authentication_error",
        "permission_denied",
        "Higher frequency batch exports are not enabled for this team.",
        None,
    )
    # the flag's PermissionDenied escapes the field loop past an earlier field's error
    assert error(Api(posthog_emulator()).post("", {"interval": "every 5 minutes"}))[0] == 403
    on = Api(posthog_emulator(high_frequency_enabled=True))
    assert create(on, interval="every 5 minutes").status == 201
    assert create(on, interval="every 15 minutes").json["interval"] == "every 15 minutes"


def test_patch_put_and_update_errors(api, export):
    path = export["id"]
    resp = api.patch(
        path, {"name": "renamed", "destination": {"type": "AwsS3", "config": {"prefix": "n/"}}}
    )
    assert resp.status == 200 and resp.json["name"] == "renamed"
    assert resp.json["destination"]["config"]["bucket_name"] == "emulator-bucket"  # deep merge
    assert resp.json["destination"]["config"]["prefix"] == "n/"
    assert resp.json["last_updated_at"] >= export["last_updated_at"]
    assert error(api.put(path, {"name": "only name"})) == (
        400,
        "validation_error",
        "required",
        "This field is required.",
        "destination",
    )
    # PUT is not a PATCH: the sent config must hold the required keys, stored ones or not
    empty = {"name": "full", "destination": {"type": "AwsS3", "config": {}}, "interval": "day"}
    assert error(api.put(path, empty)) == (
        400,
        "validation_error",
        "invalid_input",
        "Configuration missing required field: 'bucket_name'",
        "destination__non_field_errors",
    )
    full = {"bucket_name": "b2", "region": "r", "prefix": "p"}
    put = api.put(path, {**empty, "destination": {"type": "AwsS3", "config": full}})
    assert put.status == 200 and put.json["interval"] == "day" and put.json["offset_hour"] == 0
    assert put.json["destination"]["integration"] == 1  # kept: not sent
    assert error(api.patch(path, {"destination": {"type": "Snowflake", "config": {}}})) == (
        400,
        "validation_error",
        "invalid_input",
        "Cannot change destination type from 'AwsS3' to 'Snowflake'. Delete this batch export "
        "and create a new one with the new destination type.",
        "destination",
    )
    assert error(api.patch(path, {"model": "persons"})) == (
        400,
        "validation_error",
        "invalid_input",
        "Changing models is not supported. Create a new batch export instead.",
        "model",  # validate_model: a field error
    )
    assert api.patch(path, {"model": "events"}).status == 200  # unchanged is fine


def test_delete_is_soft_and_404_after(api, emu, export):
    resp = api.delete(export["id"])
    assert resp.status == 204 and resp.raw == b""
    assert error(api.get(export["id"])) == (404, "invalid_request", "not_found", "Not found.", None)
    assert api.get("").json["count"] == 0
    assert emu.get_batch_export(export["id"])["id"] == export["id"]


def test_pause_unpause_idempotent(api, emu, export):
    path = export["id"]
    assert api.post(path + "/pause").json == {"paused": True}
    first = emu.get_batch_export(path)
    assert first["paused"] is True and first["last_paused_at"] is not None
    emu.advance(2)
    assert api.post(path + "/pause").json == {"paused": True}
    assert emu.get_batch_export(path)["last_updated_at"] == first["last_updated_at"]
    assert api.post(path + "/unpause").json == {"paused": False}
    assert api.post(path + "/unpause").status == 200
    assert emu.get_batch_export(path)["paused"] is False
    assert emu.backfills(path) == []


def test_unpause_junk_backfill_value(api, export):
    api.post(export["id"] + "/pause")
    assert error(api.post(export["id"] + "/unpause", {"backfill": "maybe"})) == (
        400,
        "validation_error",
        "invalid_input",
        "Must be a valid boolean.",
        "backfill",
    )
    # the body is validated before the export is looked up
    missing = "00000000-0000-0000-0000-000000000000/unpause"
    assert error(api.post(missing, {"backfill": "maybe"}))[0] == 400
    assert error(api.post(missing, {"backfill": "yes"}))[0] == 404


def test_trailing_slash_environments_alias_and_current(api, export):
    for path in (
        f"/api/projects/1/batch_exports/{export['id']}",
        f"/api/projects/1/batch_exports/{export['id']}/",
        f"/api/environments/1/batch_exports/{export['id']}",
        f"/api/projects/@current/batch_exports/{export['id']}/",
    ):
        resp = api.get(path)
        assert resp.status == 200, path
        assert resp.json["id"] == export["id"]


def test_unknown_route_and_malformed_uuid(api):
    resp = api.get("/api/projects/1/nothing_here/", key=None)
    assert error(resp) == (404, "invalid_request", "not_found", "Endpoint not found.", None)
    assert error(api.get("not-a-uuid")) == (404, "invalid_request", "not_found", "Not found.", None)


def test_list_pagination_past_100_and_absolute_next(api, emu):
    for i in range(130):
        emu.create_batch_export(name=f"e{i}")
    emu.create_batch_export(name="wf", destination={"type": "Workflows", "config": {}})
    first = api.get("").json
    assert first["count"] == 130 and len(first["results"]) == 100
    assert first["previous"] is None
    assert first["next"] == f"{emu.url}{api.path()}?limit=100&offset=100"
    second = api.get(first["next"][len(emu.url) :]).json
    assert len(second["results"]) == 30 and second["next"] is None
    assert second["previous"] == f"{emu.url}{api.path()}?limit=100"
    names = [e["name"] for e in first["results"] + second["results"]]
    assert len(set(names)) == 130 and "wf" not in names
    assert names[0] == "e129"  # newest first
    assert len(api.get("", query={"limit": 10, "offset": 5}).json["results"]) == 10


def test_other_project_export_is_404_via_project_1(api, emu):
    other = emu.create_batch_export(project_id=2)
    assert api.get(other["id"]).status == 404
    assert api.get(f"/api/projects/2/batch_exports/{other['id']}").status == 200


def test_latest_runs_are_10_newest(api, emu, export):
    for hour in range(12):
        emu.add_run(
            export["id"], f"2026-01-01T{hour:02d}:00:00Z", f"2026-01-01T{hour + 1:02d}:00:00Z"
        )
        emu.advance(1)
    runs = api.get(export["id"]).json["latest_runs"]
    assert len(runs) == 10
    assert runs[0]["data_interval_start"] == "2026-01-01T11:00:00Z"


def test_invalid_json_body(api):
    resp = api.call("POST", "", raw_body=b"{not json")
    status, type_, code, _, attr = error(resp)
    assert (status, type_, code, attr) == (400, "invalid_request", "parse_error", None)
