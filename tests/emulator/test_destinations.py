"""Destination validation as PostHog's serializers do it, the destination test routes, the
organization-level list and the seeded defaults."""

from __future__ import annotations

import pytest

from airflow_provider_posthog_bx.testing import PostHogEmulator

from .conftest import Api, error

pytestmark = pytest.mark.emulator

NESTED = "destination__non_field_errors"  # BatchExportDestinationSerializer.validate()
S3_CONFIG = {"bucket_name": "b", "region": "us-east-1", "prefix": "p/"}


def create(api: Api, destination, **fields):
    return api.post("", {"name": "d", "interval": "hour", "destination": destination, **fields})


def invalid(resp):
    status, type_, code, detail, attr = error(resp)
    assert (status, type_, code) == (400, "validation_error", "invalid_input"), resp.json
    return detail, attr


def s3(emu, **config):
    return {"type": "AwsS3", "integration": emu.integration_id("AwsS3"), "config": config}


def test_unknown_missing_and_inline_credential_keys(api, emu):
    extra = {**S3_CONFIG, "zeta": 1, "aws_access_key_id": "AKIA", "aws_secret_access_key": "s"}
    assert invalid(create(api, s3(emu, **extra))) == (
        "Configuration has unknown field/s: 'aws_access_key_id', 'aws_secret_access_key', 'zeta'",
        NESTED,
    )
    assert invalid(create(api, s3(emu, bucket_name="b", prefix="p"))) == (
        "Configuration missing required field: 'region'",
        NESTED,
    )
    # BaseBatchExportInputs fields are accepted for every type
    ok = create(api, s3(emu, **S3_CONFIG, exclude_events=["$pageview"], integration_id=1))
    assert ok.status == 201, ok.raw
    # PATCH sends a partial config: required keys are not enforced, the rest is merged
    patched = api.patch(
        ok.json["id"], {"destination": {"type": "AwsS3", "config": {"prefix": "q"}}}
    )
    assert patched.status == 200 and patched.json["destination"]["config"]["region"] == "us-east-1"
    assert invalid(
        api.patch(ok.json["id"], {"destination": {"type": "AwsS3", "config": {"x": 1}}})
    ) == ("Configuration has unknown field/s: 'x'", NESTED)


def test_types_checked_and_coerced_like_posthog(api, emu):
    assert invalid(create(api, s3(emu, **{**S3_CONFIG, "bucket_name": 7}))) == (
        "Configuration has invalid type: got 'int', expected 'str'",
        NESTED,
    )
    assert invalid(create(api, s3(emu, **{**S3_CONFIG, "prefix": None})))[0] == (
        "Configuration has invalid type: got 'NoneType', expected 'str'"
    )
    # str -> bool through posthog.utils.str_to_bool (never fails), str -> int through int()
    yes = create(api, s3(emu, **S3_CONFIG, legacy_parquet_extension="nah"))
    assert yes.json["destination"]["config"]["legacy_parquet_extension"] is False
    # an annotation PostHog does not type-check (`int | None`) takes anything
    loose = create(api, s3(emu, **S3_CONFIG, max_file_size_mb="lots"))
    assert loose.status == 201 and loose.json["destination"]["config"]["max_file_size_mb"] == "lots"
    redshift = {
        "type": "Redshift",
        "integration": emu.integration_id("Redshift"),
        "config": {"database": "d", "port": "5440"},
    }
    assert create(api, redshift).json["destination"]["config"]["port"] == 5440
    redshift["config"] = {"database": "d", "port": "54x"}
    assert invalid(create(api, redshift))[0] == (
        "Configuration has invalid type: got 'str', expected 'int'"
    )
    assert error(create(api, {"type": "AwsS3", "integration": 1, "config": ["x"]}))[0] == 500


@pytest.mark.parametrize(
    "dtype,config,label",
    [
        ("AwsS3", S3_CONFIG, "AwsS3"),
        ("S3Compatible", S3_CONFIG, "S3Compatible"),
        ("Snowflake", {"database": "d", "warehouse": "w", "schema": "s"}, "Snowflake"),
        (
            "Databricks",
            {"http_path": "/h", "catalog": "c", "schema": "s", "table_name": "t"},
            "Databricks",
        ),
        ("BigQuery", {"dataset_id": "ds"}, "BigQuery"),
        ("AzureBlob", {"container_name": "c"}, "Azure Blob"),
        ("Postgres", {"database": "d"}, "Postgres"),
        ("Redshift", {"database": "d"}, "Redshift"),
    ],
)
def test_integration_required_per_type(api, emu, dtype, config, label):
    assert invalid(create(api, {"type": dtype, "config": config})) == (
        f"Integration is required for {label} batch exports",
        "destination",
    )
    assert invalid(create(api, {"type": dtype, "config": config, "integration": None}))[0] == (
        f"Integration is required for {label} batch exports"
    )
    made = create(
        api, {"type": dtype, "config": config, "integration_id": emu.integration_id(dtype)}
    )
    assert made.status == 201, made.raw
    assert made.json["destination"]["integration"] == emu.integration_id(dtype)


def test_postgres_and_redshift_need_one_on_create_only(api, emu):
    # exports from before integrations keep their inline credentials when edited
    old = emu.create_batch_export(
        destination={"type": "Postgres", "config": {"database": "d", "user": "u", "password": "p"}}
    )
    patch = {"destination": {"type": "Postgres", "config": {"schema": "s2"}}}
    resp = api.patch(old["id"], patch)
    assert resp.status == 200 and resp.json["destination"]["config"] == {
        "database": "d",
        "schema": "s2",
    }
    assert emu.get_batch_export(old["id"])["destination"]["integration"] is None
    # S3 family and Snowflake keep the stored integration on a PATCH that sends none...
    s3_export = emu.create_batch_export()
    keep = {"destination": {"type": "AwsS3", "config": {"prefix": "x/"}}}
    assert api.patch(s3_export["id"], keep).json["destination"]["integration"] == 1
    # ...but an explicit null is a removal
    drop = {"destination": {"type": "AwsS3", "config": {}, "integration": None}}
    assert invalid(api.patch(s3_export["id"], drop))[0] == (
        "Integration is required for AwsS3 batch exports"
    )
    # a Redshift export with an integration cannot drop back to inline credentials
    red = emu.create_batch_export(
        destination={
            "type": "Redshift",
            "config": {"database": "d"},
            "integration": emu.integration_id("Redshift"),
        }
    )
    assert invalid(api.patch(red["id"], {"destination": {"type": "Redshift", "config": {}}}))[
        0
    ].startswith("Cannot remove the integration from a Redshift batch export that uses one.")


def test_integration_lookup_errors(api, emu):
    other = emu.integration_id("AwsS3", project_id=emu.other_project_id)
    for value, code, detail in (
        (999, "does_not_exist", 'Invalid pk "999" - object does not exist.'),
        (other, "does_not_exist", f'Invalid pk "{other}" - object does not exist.'),
        ("abc", "incorrect_type", "Incorrect type. Expected pk value, received str."),
        (True, "incorrect_type", "Incorrect type. Expected pk value, received bool."),
    ):
        resp = create(api, {"type": "AwsS3", "config": S3_CONFIG, "integration": value})
        assert error(resp) == (400, "validation_error", code, detail, "destination__integration")
    wrong = create(api, {**s3(emu, **S3_CONFIG), "integration": emu.integration_id("Snowflake")})
    assert invalid(wrong)[0] == (
        "Integration provided is not an AWS S3 integration (got kind='snowflake')"
    )
    for dtype, config, message in (
        (
            "BigQuery",
            {"dataset_id": "d"},
            "Integration is not a Google Cloud service account integration.",
        ),
        ("AzureBlob", {"container_name": "c"}, "Integration is not an Azure Blob integration."),
        ("Postgres", {"database": "d"}, "Integration is not a PostgreSQL integration."),
    ):
        resp = create(api, {"type": dtype, "config": config, "integration": 1})
        assert invalid(resp)[0] == message


def test_http_url_allow_list_and_events_only(api):
    bad = {"type": "HTTP", "config": {"url": "https://evil.example/batch/", "token": "t"}}
    assert invalid(create(api, bad)) == (
        "Invalid destination URL: https://evil.example/batch/",
        "destination",
    )
    good = {"type": "HTTP", "config": {"url": "https://us.i.posthog.com/batch/", "token": "t"}}
    assert invalid(create(api, good, model="persons")) == (
        "HTTP batch exports only support the events model",
        None,
    )
    made = create(api, good)
    assert made.status == 201 and made.json["destination"]["config"] == {
        "url": "https://us.i.posthog.com/batch/"
    }
    moved = {"destination": {"type": "HTTP", "config": {"url": "http://127.0.0.1/batch/"}}}
    assert invalid(api.patch(made.json["id"], moved))[0] == (
        "Invalid destination URL: http://127.0.0.1/batch/"
    )


@pytest.mark.parametrize("dtype", ["AwsS3", "S3Compatible", "AzureBlob"])
def test_file_format_and_compression_combinations(api, emu, dtype):
    base = {"container_name": "c"} if dtype == "AzureBlob" else dict(S3_CONFIG)

    def make(**config):
        destination = {"type": dtype, "integration": emu.integration_id(dtype)}
        return create(api, {**destination, "config": {**base, **config}})

    for fmt, codec in (("Parquet", "zstd"), ("Parquet", "snappy"), ("JSONLines", "brotli")):
        assert make(file_format=fmt, compression=codec).status == 201
    assert make(compression="gzip").status == 201  # JSONLines by default
    assert invalid(make(compression="zstd"))[0] == (
        "Compression zstd is not supported for file format JSONLines. "
        "Supported compressions are ['gzip', 'brotli']"
    )
    assert invalid(make(file_format="CSV"))[0] == (
        "File format CSV is not supported. Supported file formats are ['Parquet', 'JSONLines']"
    )
    assert invalid(make(file_format="Parquet", compression="bz2"))[0] == (
        "Compression bz2 is not supported for file format Parquet. "
        "Supported compressions are ['zstd', 'lz4', 'snappy', 'gzip', 'brotli']"
    )
    assert invalid(make(legacy_parquet_extension=True))[0].startswith(
        "'legacy_parquet_extension' can only stay on for an export that already writes"
    )


def test_empty_s3_inputs(api, emu):
    assert invalid(create(api, s3(emu, bucket_name=" ", region="r", prefix="")))[0] == (
        "The following inputs are empty: ['bucket_name', 'prefix']"
    )


def test_secrets_stripped_on_read_also_nested(api, emu):
    copy_inputs = {
        "s3_bucket": "b",
        "region_name": "r",
        "s3_key_prefix": "k",
        "authorization": "arn:aws:iam::1:role/r",
        "bucket_credentials": {"aws_access_key_id": "AKIA", "aws_secret_access_key": "s"},
    }
    made = create(
        api,
        {
            "type": "Redshift",
            "integration": emu.integration_id("Redshift"),
            "config": {"database": "d", "mode": "COPY", "copy_inputs": copy_inputs},
        },
    )
    assert made.status == 201, made.raw
    stored = made.json["destination"]["config"]["copy_inputs"]
    assert stored["bucket_credentials"] == {}  # secret keys removed inside nested dicts
    assert stored["authorization"] == "arn:aws:iam::1:role/r"
    assert api.get(made.json["id"]).json["destination"] == made.json["destination"]
    no_copy = {"type": "Redshift", "integration": emu.integration_id("Redshift")}
    assert invalid(create(api, {**no_copy, "config": {"database": "d", "mode": "COPY"}}))[0] == (
        "Missing required inputs for 'COPY'"
    )


def test_legacy_s3_type_only_on_older_deployments(api, emu):
    old = {
        "type": "S3",
        "config": {**S3_CONFIG, "aws_access_key_id": "A", "aws_secret_access_key": "s"},
    }
    assert error(create(api, old)) == (
        400,
        "validation_error",
        "invalid_choice",
        '"S3" is not a valid choice.',
        "destination__type",
    )
    emu.legacy_deployment = "workflow-ids"
    made = create(api, old)
    assert made.status == 201 and made.json["destination"]["config"] == S3_CONFIG


def test_default_seeded_export_is_one_posthog_creates_today(api, emu):
    seeded = emu.create_batch_export()
    destination = seeded["destination"]
    assert destination["type"] == "AwsS3" and destination["integration"] == 1
    again = create(api, destination)
    assert again.status == 201, again.raw
    assert again.json["destination"] == destination
    assert (
        api.put(seeded["id"], {"name": "n", "interval": "hour", "destination": destination}).status
        == 200
    )


def test_destination_test_description(api):
    described = api.get("test", query={"destination": "AwsS3"})
    assert described.status == 200
    assert described.json == {
        "steps": [
            {
                "name": "Ensure we can assume provided AWS role",
                "description": "Ensure the configured AWS role ARN exists and that we have the "
                "required trust relationship to assume it.",
                "result": None,
            },
            {
                "name": "Check S3 bucket exists",
                "description": "Ensure the configured S3 bucket exists and that we have the "
                "required permissions to access it.",
                "result": None,
            },
        ]
    }
    assert [
        len(api.get("test", query={"destination": d}).json["steps"])
        for d in ("S3Compatible", "BigQuery", "Snowflake", "Databricks", "AzureBlob")
    ] == [1, 5, 4, 5, 1]
    missing, unknown = api.get("test"), api.get("test", query={"destination": "Postgres"})
    assert (missing.status, missing.raw) == (400, b"")
    assert (unknown.status, unknown.raw) == (404, b"")


def test_run_test_step_new(api, emu):
    body = {"name": "t", "interval": "hour", "destination": s3(emu, **S3_CONFIG)}
    skipped = api.post("run_test_step_new", {**body, "step": 0})
    assert skipped.status == 200
    assert skipped.json["name"] == "Ensure we can assume provided AWS role"
    assert skipped.json["result"] == {
        "status": "Skipped",
        "message": "No configured AWS role ARN, skipping test",
    }
    passed = api.post("run_test_step_new", {**body, "step": 1}).json
    assert passed["result"] == {"status": "Passed", "message": None}
    # the body is validated as a create
    assert error(api.post("run_test_step_new", {"destination": body["destination"]}))[4] == "name"
    assert invalid(
        api.post(
            "run_test_step_new", {**body, "destination": {"type": "AwsS3", "config": S3_CONFIG}}
        )
    )[0] == ("Integration is required for AwsS3 batch exports")
    assert error(api.post("run_test_step_new", {**body, "step": 2}))[0] == 500  # IndexError
    noop = {**body, "destination": {"type": "NoOp", "config": {}}}
    assert error(api.post("run_test_step_new", noop))[0] == 500  # no test for NoOp


def test_run_test_step_on_an_export(api, emu):
    export = emu.create_batch_export(
        destination={
            "type": "Snowflake",
            "integration": emu.integration_id("Snowflake"),
            "config": {"database": "d", "warehouse": "w", "schema": "s"},
        }
    )
    path = f"{export['id']}/run_test_step"
    body = {"name": "t", "interval": "hour", "step": 3}
    # the stored config goes under the sent one; only a sent integration configures the test
    sent = {"type": "Snowflake", "config": {}, "integration": emu.integration_id("Snowflake")}
    ok = api.post(path, {**body, "destination": sent}).json
    assert ok["name"] == "Verify Snowflake schema" and ok["result"]["status"] == "Passed"
    bare = api.post(path, {**body, "destination": {"type": "Snowflake", "config": {}}}).json
    assert bare["result"] == {
        "status": "Failed",
        "message": "The test step cannot run as it's not configured.",
    }
    # another type: the stored Snowflake keys merged under it are unknown to AwsS3 first
    changed = {**body, "destination": {"type": "AwsS3", "config": S3_CONFIG, "integration": 1}}
    assert invalid(api.post(path, changed)) == (
        "Configuration has unknown field/s: 'database', 'schema', 'warehouse'",
        NESTED,
    )
    assert error(api.post(path, {"step": 0}))[0] == 500  # `data["destination"]` KeyError
    assert api.post("00000000-0000-0000-0000-000000000000/run_test_step", body).status == 404


def test_organization_level_list(api, emu):
    mine = emu.create_batch_export(name="p1")
    other = emu.create_batch_export(name="p2", project_id=emu.other_project_id)
    gone = emu.create_batch_export(name="gone")
    api.delete(gone["id"])
    path = f"/api/organizations/{emu.organization_id}/batch_exports/"
    body = api.get(path).json
    assert body["count"] == 2 and [e["id"] for e in body["results"]] == [other["id"], mine["id"]]
    assert (
        error(api.get("/api/organizations/00000000-0000-0000-0000-000000000000/batch_exports"))[3]
        == "Organization not found."
    )
    emu.add_api_key("phx_team_scoped", project_ids=[emu.project_id])
    assert error(Api(emu, "phx_team_scoped").get(path))[3] == (
        "API keys with scoped projects are only supported on project-based endpoints."
    )
    assert error(api.post(path, {}))[:3] == (403, "authentication_error", "permission_denied")


def test_boolean_fields_take_drf_words(api, emu):
    export = emu.create_batch_export()
    for word, value in (
        ("t", True),
        ("1", True),
        ("on", True),
        ("true", True),
        ("y", True),
        ("YES", True),
        (1, True),
        ("f", False),
        ("0", False),
        ("off", False),
        ("No", False),
        (0, False),
        ("FALSE", False),
        ("n", False),
    ):
        resp = api.patch(export["id"], {"paused": word})
        assert resp.status == 200 and resp.json["paused"] is value, word
    for junk in ("maybe", 2, "", [True]):
        assert error(api.patch(export["id"], {"paused": junk})) == (
            400,
            "validation_error",
            "invalid_input",
            "Must be a valid boolean.",
            "paused",
        ), junk
    assert error(api.patch(export["id"], {"paused": None}))[2:] == (
        "null",
        "This field may not be null.",
        "paused",
    )


def test_bare_emulator_default_export_is_valid():
    with PostHogEmulator() as emu:
        seeded = emu.create_batch_export()
        assert seeded["destination"]["integration"] == emu.integration_id("AwsS3")
        assert create(Api(emu), seeded["destination"]).status == 201
