"""Destination asset URIs, OpenLineage dataset names and asset-event extras: pure rules."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_posthog_bx.assets import (
    backfill_exported,
    destination_uri,
    partition_key,
    run_exported,
)
from airflow_provider_posthog_bx.lineage import input_dataset, output_dataset

UTC = timezone.utc


def export(kind: str, config: dict, **fields) -> dict:
    return {"id": "e1", "destination": {"type": kind, "config": config}, **fields}


# (destination type, config, asset URI, OpenLineage (namespace, name))
DESTINATIONS = [
    (
        "AwsS3",
        {"bucket_name": "lake", "region": "eu-west-1", "prefix": "posthog/{table}/{year}"},
        "s3://lake/posthog",
        ("s3://lake", "posthog"),
    ),
    ("S3Compatible", {"bucket_name": "minio", "prefix": ""}, "s3://minio", ("s3://minio", "/")),
    ("S3", {"bucket_name": "old", "prefix": "/a/b/"}, "s3://old/a/b", ("s3://old", "a/b")),
    (
        "Snowflake",
        {"account": "MyOrg-Acct1", "database": "RAW", "schema": "POSTHOG", "warehouse": "W"},
        "snowflake://MyOrg-Acct1/RAW/POSTHOG/events",
        ("snowflake://myorg-acct1", "RAW.POSTHOG.events"),
    ),
    (
        "BigQuery",
        {"project_id": "proj", "dataset_id": "raw", "table_id": "ph"},
        "bigquery://proj/raw/ph",
        ("bigquery", "proj.raw.ph"),
    ),
    (
        "Postgres",
        {"host": "db.internal", "database": "dw"},
        "postgres://db.internal:5432/dw/public/events",
        ("postgres://db.internal:5432", "dw.public.events"),
    ),
    (
        "Postgres",
        {"host": "db", "port": "6543", "database": "dw", "schema": "ph", "table_name": "ev"},
        "postgres://db:6543/dw/ph/ev",
        ("postgres://db:6543", "dw.ph.ev"),
    ),
    (
        "Redshift",
        {"host": "wh.abc123.us-east-1.redshift.amazonaws.com", "database": "dev"},
        "redshift://wh.abc123.us-east-1.redshift.amazonaws.com:5439/dev/public/events",
        ("redshift://wh.us-east-1:5439", "dev.public.events"),
    ),
    (
        "Databricks",
        {
            "server_hostname": "dbc-1.cloud.databricks.com",
            "http_path": "/sql/1",
            "catalog": "main",
            "schema": "ph",
            "table_name": "events",
        },
        "databricks://dbc-1.cloud.databricks.com/main/ph/events",
        ("databricks://dbc-1.cloud.databricks.com", "main.ph.events"),
    ),
]

# Where PostHog does not say enough: no table or prefix, or coordinates in an Integration.
UNNAMED = [
    ("HTTP", {"url": "https://us.i.posthog.com/batch/"}),
    ("NoOp", {}),
    ("Workflows", {"hog_function_id": "x"}),
    ("FileDownload", {}),
    ("AzureBlob", {"container_name": "c", "prefix": "p"}),
    ("Snowflake", {"database": "RAW", "schema": "POSTHOG", "warehouse": "W"}),  # account
    ("BigQuery", {"dataset_id": "raw"}),  # project in the Integration
    ("Postgres", {"database": "dw", "schema": "public"}),  # host in the Integration
    ("Redshift", {"database": "dev"}),
    ("Databricks", {"http_path": "/sql/1", "catalog": "c", "schema": "s", "table_name": "t"}),
    ("AwsS3", {"region": "us-east-1"}),  # no bucket
]


@pytest.mark.parametrize(("kind", "config", "uri", "ol"), DESTINATIONS)
def test_destination_uri_and_openlineage_name_per_destination_type(kind, config, uri, ol):
    assert destination_uri(export(kind, config)) == uri
    assert destination_uri(export(kind, config)["destination"]) == uri  # the destination alone
    assert output_dataset(export(kind, config)) == ol


@pytest.mark.parametrize(("kind", "config"), UNNAMED)
def test_no_uri_where_posthog_does_not_expose_the_destination(kind, config):
    assert destination_uri(export(kind, config)) is None
    assert output_dataset(export(kind, config)) is None


@pytest.mark.parametrize("broken", [{}, {"destination": None}, {"destination": {"type": "S3"}}])
def test_no_uri_for_an_export_without_a_destination_config(broken):
    assert destination_uri(broken) is None
    assert output_dataset(broken) is None


def test_input_dataset_is_the_posthog_model_of_the_project():
    assert input_dataset("https://eu.posthog.com", 7, {"model": "persons"}) == (
        "posthog://eu.posthog.com",
        "7.persons",
    )
    assert input_dataset("http://127.0.0.1:8000/", 1, {})[1] == "1.events"


def test_partition_keys_are_the_interval_start_in_the_exports_timezone():
    start = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    assert partition_key(start) == "2026-03-01T23:00:00"
    day = export("NoOp", {}, interval="day", timezone="Europe/Berlin")
    extra, keys = run_exported(
        day,
        "e1",
        {
            "id": "r1",
            "data_interval_start": "2026-03-01T23:00:00Z",
            "data_interval_end": "2026-03-02T23:00:00Z",
            "records_completed": 5,
            "bytes_exported": 100,
        },
    )
    assert keys == ["2026-03-02T00:00:00"]  # midnight in Berlin, as a Berlin cron names it
    assert extra == {
        "batch_export_id": "e1",
        "data_interval_start": "2026-03-01T23:00:00Z",
        "data_interval_end": "2026-03-02T23:00:00Z",
        "records_completed": 5,
        "run_id": "r1",
        "partition_key": "2026-03-02T00:00:00",
        "bytes_exported": 100,
    }


def test_a_backfill_has_one_partition_key_per_interval_it_exported():
    hourly = export("NoOp", {}, interval="hour", timezone="UTC")
    extra, keys = backfill_exported(
        hourly,
        {
            "id": "b1",
            "start_at": "2026-01-01T00:00:00Z",
            "end_at": "2026-01-01T03:00:00Z",
            "total_records_count": 30,
        },
    )
    assert keys == ["2026-01-01T00:00:00", "2026-01-01T01:00:00", "2026-01-01T02:00:00"]
    assert extra["backfill_id"] == "b1" and extra["records_completed"] == 30
    assert extra["data_interval_end"] == "2026-01-01T03:00:00Z"
    earliest = backfill_exported(hourly, {"id": "b2", "start_at": None, "end_at": None})
    assert earliest[1] == [] and earliest[0]["data_interval_start"] is None
