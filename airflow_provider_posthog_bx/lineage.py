"""OpenLineage for batch exports: the PostHog model a batch export reads and the destination
dataset it writes, named by the OpenLineage naming spec, and the facets of one task.

The naming functions are pure. :func:`operator_lineage` builds the provider's
``OperatorLineage``; it imports ``apache-airflow-providers-openlineage`` (the ``openlineage``
extra) only when called, and returns None without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_posthog_bx.assets import S3_TYPES, destination
from airflow_provider_posthog_bx.links.batch_export import batch_export_url

DatasetName = tuple[str, str]
"""An OpenLineage dataset's ``(namespace, name)``."""


def input_dataset(base_url: str, project_id: int | str, export: Mapping[str, Any]) -> DatasetName:
    """What the export reads: namespace ``posthog://{host}``, name ``{project_id}.{model}``
    (``events``, ``persons``, ``sessions`` or ``hogql``)."""
    host = urlsplit(base_url).netloc or base_url
    model = export.get("model") or "events"
    return f"posthog://{host}", f"{project_id}.{model}"


def output_dataset(export: Mapping[str, Any]) -> DatasetName | None:
    """Where the export writes, by the OpenLineage naming spec (S3 ``s3://{bucket}`` + key
    prefix, Snowflake ``snowflake://{account}`` + ``db.schema.table``, BigQuery ``bigquery`` +
    ``project.dataset.table``, ``postgres://{host}:{port}``, ``redshift://{cluster}.{region}:
    {port}``, ``databricks://{host}`` + ``catalog.schema.table``), or None where PostHog does
    not expose enough (HTTP, NoOp, AzureBlob, or coordinates in an Integration)."""
    found = destination(export)
    if found is None or not found.complete:
        return None
    location, path = str(found.location), ".".join(map(str, found.path))
    if found.type in S3_TYPES:
        return f"s3://{location}", found.path[0] or "/"
    if found.type == "Snowflake":
        return f"snowflake://{location.lower()}", path
    if found.type == "BigQuery":
        return "bigquery", f"{location}.{path}"
    if found.type == "Redshift":
        host, _, port = location.rpartition(":")
        return f"redshift://{_redshift_cluster(host)}:{port}", path
    scheme = "postgres" if found.type == "Postgres" else "databricks"
    return f"{scheme}://{location}", path


def operator_lineage(
    *,
    base_url: str,
    project_id: int | str,
    export: Mapping[str, Any],
    extras: Sequence[Mapping[str, Any]],
) -> Any:
    """The ``OperatorLineage`` of a task that saw ``extras`` exported (one per backfill or
    run): input, output (with the row count PostHog reported), and an ``externalQuery`` run
    facet per id, whose ``source`` is the export's PostHog page. None without the
    OpenLineage provider."""
    try:
        # The `openlineage` extra; type-checked where it is installed.
        from airflow.providers.openlineage.extractors import (  # type: ignore[import-not-found,unused-ignore]
            OperatorLineage,
        )
        from openlineage.client.event_v2 import (  # type: ignore[import-not-found,unused-ignore]
            Dataset,
            InputDataset,
            OutputDataset,
        )
        from openlineage.client.facet_v2 import (  # type: ignore[import-not-found,unused-ignore]
            external_query_run,
            output_statistics_output_dataset,
        )
    except ImportError:
        return None
    url = batch_export_url(base_url, project_id, str(export.get("id") or ""))
    namespace, name = input_dataset(base_url, project_id, export)
    inputs: list[Dataset] = [InputDataset(namespace=namespace, name=name)]
    outputs: list[Dataset] = []
    out = output_dataset(export)
    if out is not None:
        counts = [c for e in extras if isinstance(c := e.get("records_completed"), int)]
        facets: dict[str, Any] = {}
        if counts and len(counts) == len(extras):
            sizes = [b for e in extras if isinstance(b := e.get("bytes_exported"), int)]
            size = sum(sizes) if sizes and len(sizes) == len(extras) else None
            facets["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=sum(counts), size=size
                )
            )
        outputs.append(OutputDataset(namespace=out[0], name=out[1], outputFacets=facets))
    run_facets: dict[str, Any] = {}
    ids = [str(e.get("backfill_id") or e.get("run_id")) for e in extras]
    if len(ids) == 1:
        run_facets["externalQuery"] = external_query_run.ExternalQueryRunFacet(
            externalQueryId=ids[0], source=url
        )
    elif ids:
        run_facets["externalQuery"] = external_query_run.ExternalQueryRunFacet(
            externalQueryId=",".join(ids), source=url
        )
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)


def _redshift_cluster(host: str) -> str:
    """OpenLineage's Redshift namespace is ``{cluster_identifier}.{region}``: read from a
    cluster endpoint (``cluster.xxxx.region.redshift.amazonaws.com``), else the host."""
    labels = host.split(".")
    if len(labels) >= 6 and labels[-3] == "redshift" and labels[-2:] == ["amazonaws", "com"]:
        return f"{labels[0]}.{labels[2]}"
    return host
