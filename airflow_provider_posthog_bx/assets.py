"""Where a batch export writes, as an Airflow asset URI, and what an asset event about one
exported interval says.

Pure functions of the export PostHog returns (no network, no connection), so DAG files can call
them at parse time on an export they describe themselves, and the provider's tasks call them on
the export they read.

The URIs follow AIP-60 and match what the stock providers register (amazon ``s3://``,
snowflake, google ``bigquery://``, postgres, amazon ``redshift://``, databricks), so the
asset a PostHog export produces is the same asset a downstream task of those providers reads.
PostHog keeps some of a destination's coordinates in an Integration (Snowflake's account,
Databricks' host, newer Postgres/Redshift hosts) that its batch-export API does not return:
then :func:`destination_uri` is ``None`` and a DAG author names the asset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any

from airflow_provider_posthog_bx.core.bounds import export_timezone, format_bounds, intervals
from airflow_provider_posthog_bx.core.time import format_instant, from_posthog
from airflow_provider_posthog_bx.exceptions import PostHogError

PARTITION_KEY_FORMAT = "%Y-%m-%dT%H:%M:%S"
"""Airflow 3.3's partition key format: ``CronPartitionTimetable``'s default ``key_format`` and
the ``input_format`` of the stock temporal partition mappers (``StartOfHourMapper``,
``StartOfDayMapper``...)."""

S3_TYPES = frozenset({"S3", "AwsS3", "S3Compatible"})


@dataclass(frozen=True)
class Destination:
    """Where a batch export writes, read from its destination config with PostHog's defaults
    (a table is ``events``; a Postgres/Redshift schema ``public``, ports 5432/5439). A
    coordinate PostHog keeps in an Integration is None.

    ``location`` is the warehouse (Snowflake account, Postgres/Redshift ``host:port``, BigQuery
    project, Databricks host) or the bucket; ``path`` the database/schema/table (BigQuery:
    dataset/table) or the key prefix.
    """

    type: str
    location: str | None
    path: tuple[str | None, ...]

    @property
    def complete(self) -> bool:
        return self.location is not None and all(part is not None for part in self.path)


def destination(export: Mapping[str, Any]) -> Destination | None:
    """The destination of ``export`` (as PostHog returns it, or just its ``destination``),
    or None for a type that writes no table or prefix (HTTP, NoOp, Workflows, FileDownload,
    AzureBlob, whose storage account lives in an Integration)."""
    found = export.get("destination", export)
    if not isinstance(found, Mapping) or not isinstance(found.get("config"), Mapping):
        return None
    kind, config = str(found.get("type")), found["config"]
    if kind in S3_TYPES:
        return Destination(
            kind, _text(config, "bucket_name"), (static_prefix(config.get("prefix")),)
        )
    if kind == "Snowflake":
        return Destination(kind, _text(config, "account"), _table(config, None))
    if kind == "BigQuery":
        path: tuple[str | None, ...] = (
            _text(config, "dataset_id"),
            _text(config, "table_id") or "events",
        )
        return Destination(kind, _text(config, "project_id"), path)
    if kind == "Postgres":
        return Destination(kind, _host_port(config, 5432), _table(config, "public"))
    if kind == "Redshift":
        return Destination(kind, _host_port(config, 5439), _table(config, "public"))
    if kind == "Databricks":
        path = (_text(config, "catalog"), _text(config, "schema"), _text(config, "table_name"))
        return Destination(kind, _text(config, "server_hostname"), path)
    return None


URI_SCHEMES = {
    "Snowflake": "snowflake",
    "BigQuery": "bigquery",
    "Postgres": "postgres",
    "Redshift": "redshift",
    "Databricks": "databricks",
}


def destination_uri(export: Mapping[str, Any]) -> str | None:
    """The asset URI of the table or prefix the batch export writes to, or ``None`` where
    PostHog does not expose enough to name it (HTTP, NoOp, Workflows, FileDownload, AzureBlob,
    or coordinates held in an Integration).

    :param export: the batch export as PostHog returns it (``{"destination": {"type": ...,
        "config": {...}}, ...}``), or just its ``destination``.
    """
    found = destination(export)
    if found is None or not found.complete:
        return None
    if found.type in S3_TYPES:
        prefix = found.path[0]
        return f"s3://{found.location}/{prefix}" if prefix else f"s3://{found.location}"
    return f"{URI_SCHEMES[found.type]}://{found.location}/" + "/".join(map(str, found.path))


def static_prefix(prefix: Any) -> str:
    """The part of an S3/Azure key prefix that is the same for every interval: PostHog expands
    ``{year}``, ``{month}``, ``{table}``... per file, so the asset is the prefix up to the first
    placeholder, without surrounding slashes."""
    if not isinstance(prefix, str):
        return ""
    return prefix.split("{", 1)[0].strip("/")


def partition_key(start: datetime, zone: tzinfo = timezone.utc) -> str:
    """The Airflow 3.3 partition key of an interval starting at ``start``: its wall-clock time
    in the export's timezone, in :data:`PARTITION_KEY_FORMAT` (``2026-01-01T10:00:00``), as a
    ``CronPartitionTimetable`` in that timezone names the same interval."""
    return start.astimezone(zone).strftime(PARTITION_KEY_FORMAT)


def event_extra(
    *,
    batch_export_id: str,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    records_completed: int | None,
    run_id: str | None = None,
    backfill_id: str | None = None,
    zone: tzinfo = timezone.utc,
) -> dict[str, Any]:
    """The ``extra`` of an asset event for data PostHog exported: plain JSON (ISO instants in
    UTC); ``partition_key`` is the interval's key (see :func:`partition_key`)."""
    extra: dict[str, Any] = {
        "batch_export_id": batch_export_id,
        "data_interval_start": _iso(data_interval_start),
        "data_interval_end": _iso(data_interval_end),
        "records_completed": records_completed,
    }
    if run_id is not None:
        extra["run_id"] = run_id
    if backfill_id is not None:
        extra["backfill_id"] = backfill_id
    if data_interval_start is not None:
        extra["partition_key"] = partition_key(data_interval_start, zone)
    return extra


def _iso(value: datetime | None) -> str | None:
    return None if value is None else format_instant(value)


def _text(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _host_port(config: Mapping[str, Any], default_port: int) -> str | None:
    host = _text(config, "host")
    if host is None:
        return None
    port = config.get("port")
    if isinstance(port, str) and port.strip().isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int):
        port = default_port
    return f"{host}:{port}"


def _table(config: Mapping[str, Any], default_schema: str | None) -> tuple[str | None, ...]:
    """``database``, ``schema`` and ``table_name`` with PostHog's defaults (the table is
    ``events``; Postgres/Redshift's schema is ``public``, Snowflake's has no default)."""
    schema = _text(config, "schema") or default_schema
    return (_text(config, "database"), schema, _text(config, "table_name") or "events")


def backfill_exported(
    export: Mapping[str, Any], backfill: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The asset-event extra of a Completed backfill and the partition keys of the intervals
    it exported (none for a backfill from the earliest data, which has no start)."""
    start, end = from_posthog(backfill.get("start_at")), from_posthog(backfill.get("end_at"))
    tz = export_timezone(export)
    extra = event_extra(
        batch_export_id=str(export.get("id") or backfill.get("batch_export") or ""),
        data_interval_start=start,
        data_interval_end=end,
        records_completed=_count(backfill.get("total_records_count")),
        backfill_id=str(backfill.get("id")),
        zone=tz,
    )
    keys: list[str] = []
    if start is not None and end is not None:
        try:
            bounds = format_bounds(export, format_instant(start), format_instant(end))
        except PostHogError:
            bounds = None  # an export whose settings changed since: no keys rather than wrong
        if bounds is not None:
            keys = [partition_key(s, tz) for s, _ in intervals(export, bounds)]
    return extra, keys


def run_exported(
    export: Mapping[str, Any], batch_export_id: str, run: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The asset-event extra of a Completed run and its interval's partition key."""
    start = from_posthog(run.get("data_interval_start"))
    tz = export_timezone(export)
    extra = event_extra(
        batch_export_id=batch_export_id,
        data_interval_start=start,
        data_interval_end=from_posthog(run.get("data_interval_end")),
        records_completed=_count(run.get("records_completed")),
        run_id=str(run.get("id")),
        zone=tz,
    )
    extra["bytes_exported"] = _count(run.get("bytes_exported"))
    return extra, [partition_key(start, tz)] if start is not None else []


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
