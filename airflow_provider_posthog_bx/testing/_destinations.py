"""Destination types as PostHog declares them: config fields, secrets, integrations, tests.

One table per fact, each copied from the PostHog file named beside it, so the validation in
``_validation`` and the renderings in ``_model`` read the same source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass

# products/batch_exports/backend/models/batch_export.py, BatchExportDestination.Destination
# (newest: the 2026 migration removed the legacy "S3" type).
DESTINATION_TYPES = (
    "AwsS3",
    "S3Compatible",
    "Snowflake",
    "Postgres",
    "Redshift",
    "BigQuery",
    "Databricks",
    "AzureBlob",
    "Workflows",
    "HTTP",
    "NoOp",
    "FileDownload",
)
# What older deployments (``legacy_deployment``) still accept: the "S3" type, inline keys.
LEGACY_DESTINATION_TYPES = ("S3", *DESTINATION_TYPES)


@dataclass(frozen=True)
class ConfigField:
    """One field of a workflow inputs dataclass (products/batch_exports/backend/service.py).

    :param checked: the annotation PostHog type-checks (``str``, ``int``, ``bool``): the
        serializer checks only fields whose annotation is a plain type; ``None`` for unions,
        ``Literal`` and dataclasses, which it accepts as sent.
    :param required: no default in the dataclass (required on create and PUT, not on PATCH).
    """

    name: str
    checked: type | None
    required: bool = False


def _f(name: str, checked: type | None = None, required: bool = False) -> ConfigField:
    return ConfigField(name, checked, required)


# BaseBatchExportInputs: accepted in any config, never checked.
BASE_FIELDS = frozenset(
    {
        "batch_export_id",
        "team_id",
        "interval",
        "timezone",
        "data_interval_end",
        "exclude_events",
        "include_events",
        "is_backfill",
        "is_earliest_backfill",
        "backfill_details",
        "batch_export_model",
        "batch_export_schema",
        "integration_id",
    }
)
_S3_FAMILY = (
    _f("bucket_name", str, True),
    _f("region", str, True),
    _f("prefix", str, True),
    _f("compression"),
    _f("file_format", str),
    _f("max_file_size_mb"),
    _f("legacy_parquet_extension", bool),
)
# DESTINATION_WORKFLOWS: each type's inputs dataclass, fields in dataclass order.
CONFIG_FIELDS: dict[str, tuple[ConfigField, ...]] = {
    "AwsS3": (*_S3_FAMILY, _f("encryption"), _f("kms_key_id")),
    "S3Compatible": (*_S3_FAMILY, _f("use_virtual_style_addressing", bool)),
    "AzureBlob": (
        _f("container_name", str, True),
        _f("prefix", str),
        _f("compression"),
        _f("file_format", str),
        _f("max_file_size_mb"),
        _f("legacy_parquet_extension", bool),
    ),
    "BigQuery": (
        _f("dataset_id", str, True),
        _f("table_id", str),
        _f("project_id"),
        _f("private_key"),
        _f("private_key_id"),
        _f("token_uri"),
        _f("client_email"),
        _f("use_json_type", bool),
    ),
    "Databricks": (
        _f("http_path", str, True),
        _f("catalog", str, True),
        _f("schema", str, True),
        _f("table_name", str, True),
        _f("use_variant_type", bool),
        _f("use_automatic_schema_evolution", bool),
    ),
    "FileDownload": (
        _f("data_interval_start"),
        _f("batch_export_run_id"),
        _f("file_format", str),
        _f("max_file_size_mb"),
        _f("compression"),
        _f("expires_in_seconds", int),
        _f("main_activity_timeout_seconds"),
        _f("stage_activity_timeout_seconds"),
    ),
    "HTTP": (_f("url", str, True), _f("token", str, True)),
    "NoOp": (_f("arg", str),),
    "Postgres": (
        _f("database", str, True),
        _f("schema", str),
        _f("table_name", str),
        _f("user"),
        _f("host"),
        _f("port"),
        _f("password"),
        _f("has_self_signed_cert", bool),
    ),
    "Redshift": (
        _f("database", str, True),
        _f("user"),
        _f("password"),
        _f("host"),
        _f("schema", str),
        _f("table_name", str),
        _f("port", int),
        _f("properties_data_type", str),
        _f("mode"),
        _f("copy_inputs"),
    ),
    "Snowflake": (
        _f("database", str, True),
        _f("warehouse", str, True),
        _f("schema", str, True),
        _f("table_name", str),
        _f("role"),
    ),
    "Workflows": (_f("hog_function_id", str, True),),
    # Mid-2025 S3BatchExportInputs, for legacy deployments: inline keys, no integration.
    "S3": (
        _f("bucket_name", str, True),
        _f("region", str, True),
        _f("prefix", str, True),
        _f("aws_access_key_id"),
        _f("aws_secret_access_key"),
        _f("compression"),
        _f("encryption"),
        _f("kms_key_id"),
        _f("endpoint_url"),
        _f("file_format", str),
        _f("max_file_size_mb"),
        _f("use_virtual_style_addressing", bool),
    ),
}
# Annotations `bool | None` / `int | None` too: what coerce_config_to_declared_types restores.
DECLARED_BOOL = frozenset({"is_backfill", "is_earliest_backfill"})
DECLARED_INT = frozenset({"team_id", "integration_id", "max_file_size_mb", "port"}) | {
    "expires_in_seconds",
    "main_activity_timeout_seconds",
    "stage_activity_timeout_seconds",
}

_S3_SECRETS = frozenset({"aws_access_key_id", "aws_secret_access_key"})
# BatchExportDestination.secret_fields: removed from `config` on every read (dicts only).
SECRET_FIELDS: dict[str, frozenset[str]] = {
    "S3": _S3_SECRETS,
    "AwsS3": _S3_SECRETS,
    "S3Compatible": _S3_SECRETS,
    "Snowflake": frozenset({"user", "password", "private_key", "private_key_passphrase"}),
    "Postgres": frozenset({"user", "password"}),
    "Redshift": frozenset({"user", "password", "aws_access_key_id", "aws_secret_access_key"}),
    "BigQuery": frozenset({"private_key", "private_key_id", "client_email", "token_uri"}),
    "HTTP": frozenset({"token"}),
}

# Object storage destinations: new ones get `legacy_parquet_extension: false` on create
# (destinations.py, `_set_default_parquet_extension`; membership of OBJECT_STORAGE_DESTINATIONS
# derived from the file formats they write).
OBJECT_STORAGE = frozenset({"AwsS3", "S3Compatible", "AzureBlob"})
S3_FAMILY = frozenset({"AwsS3", "S3Compatible"})
# temporal/destinations/constants.py (the same table serves S3 and Azure Blob).
SUPPORTED_COMPRESSIONS: dict[str, list[str]] = {
    "Parquet": ["zstd", "lz4", "snappy", "gzip", "brotli"],
    "JSONLines": ["gzip", "brotli"],
}
ALLOWED_HTTP_URLS = ("https://us.i.posthog.com/batch/", "https://eu.i.posthog.com/batch/")

# Integration kinds (posthog/models/integration.py, Integration.IntegrationKind) per type.
INTEGRATION_KINDS: dict[str, str] = {
    "AwsS3": "aws-s3",
    "S3Compatible": "s3-compatible",
    "Snowflake": "snowflake",
    "Databricks": "databricks",
    "BigQuery": "google-cloud-service-account",
    "AzureBlob": "azure-blob",
    "Postgres": "postgresql",
    "Redshift": "aws-redshift",
}
# What the emulator seeds for each kind (config, sensitive config): enough for the serializer's
# checks and the destination tests' "is configured" rules; nothing is ever contacted.
SEEDED_INTEGRATIONS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "aws-s3": ({}, {"aws_access_key_id": "AKIAEMULATOR", "aws_secret_access_key": "emulator"}),
    "s3-compatible": (
        {"endpoint_url": "https://s3.emulator.invalid"},
        {"aws_access_key_id": "EMULATOR", "aws_secret_access_key": "emulator"},
    ),
    "snowflake": (
        {"account": "emulator-account", "user": "emulator", "authentication_type": "password"},
        {"password": "emulator"},
    ),
    "databricks": (
        {"server_hostname": "emulator.cloud.databricks.com"},
        {"client_id": "emulator", "client_secret": "emulator"},
    ),
    "google-cloud-service-account": (
        {"project_id": "emulator-project", "client_email": "emulator@emulator.invalid"},
        {"private_key": "emulator", "private_key_id": "emulator", "token_uri": "emulator"},
    ),
    "azure-blob": ({}, {"connection_string": "DefaultEndpointsProtocol=https;AccountName=emu"}),
    "postgresql": ({"host": "postgres.emulator.invalid", "port": "5432"}, {"password": "x"}),
    "aws-redshift": ({"host": "redshift.emulator.invalid"}, {"password": "emulator"}),
}


@dataclass(frozen=True)
class TestStep:
    """One destination test step (products/batch_exports/backend/presentation/views/
    destination_tests/<type>.py): its name, description and the keys it needs configured.

    :param needs: without all of these the step fails as "not configured" (``_is_configured``).
    :param skip_unless: a configured step reports ``Skipped`` with ``skip_message`` unless all
        of these are configured too (AWS role assumption, BigQuery impersonation).
    """

    name: str
    description: str
    needs: tuple[str, ...]
    skip_unless: tuple[str, ...] = ()
    skip_message: str = ""


_S3_BUCKET = TestStep(
    "Check S3 bucket exists",
    "Ensure the configured S3 bucket exists and that we have the required permissions to "
    "access it.",
    ("bucket_name", "aws_access_key_id", "aws_secret_access_key"),
)
_SF = ("account", "user", "password")
_DBX = ("server_hostname", "http_path", "client_id", "client_secret")
_BQ = ("project_id", "private_key", "private_key_id", "token_uri", "client_email")
# Seeded integrations carry a key, so the impersonation steps skip (`integration.has_key()`).
_BQ_IMPERSONATION = "service_account_to_impersonate"
DESTINATION_TESTS: dict[str, tuple[TestStep, ...]] = {
    "AwsS3": (
        TestStep(
            "Ensure we can assume provided AWS role",
            "Ensure the configured AWS role ARN exists and that we have the required trust "
            "relationship to assume it.",
            (),
            ("aws_role_arn", "bucket_name"),
            "No configured AWS role ARN, skipping test",
        ),
        _S3_BUCKET,
    ),
    "S3Compatible": (_S3_BUCKET,),
    "BigQuery": (
        TestStep(
            "Impersonate BigQuery service account",
            "Confirm we can impersonate a BigQuery service account.",
            ("project_id",),
            (_BQ_IMPERSONATION,),
            "Using credentials without impersonation, skipping test",
        ),
        TestStep(
            "Verify BigQuery service account ownership",
            "Confirm that the current PostHog organization owns a BigQuery service account by "
            "ensuring its organization ID is set as part of the service account description.",
            ("project_id",),
            (_BQ_IMPERSONATION,),
            "Using credentials without impersonation, ownership is assumed",
        ),
        TestStep(
            "Verify BigQuery project",
            "Ensure the configured BigQuery project exists and that we have the required "
            "permissions to access it.",
            _BQ,
        ),
        TestStep(
            "Verify BigQuery dataset",
            "Ensure the configured BigQuery dataset exists and that we have the required "
            "permissions to access it.",
            (*_BQ, "dataset_id"),
        ),
        TestStep(
            "Verify BigQuery table",
            "Ensure the configured BigQuery table already exists or that we have the required "
            "permissions to create it. Additionally, when creating a table, we will attempt to "
            "delete it.",
            (*_BQ, "dataset_id", "table_id"),
        ),
    ),
    "Snowflake": (
        TestStep(
            "Establish connection to Snowflake",
            "Attempt to establish a Snowflake connection with the provided configuration values.",
            _SF,
        ),
        TestStep(
            "Verify Snowflake warehouse",
            "Verify the configured Snowflake warehouse exists and we have the necessary "
            "permissions to use it.",
            (*_SF, "warehouse"),
        ),
        TestStep(
            "Verify Snowflake database",
            "Verify the configured Snowflake database exists and we have the necessary "
            "permissions to use it.",
            (*_SF, "warehouse", "database"),
        ),
        TestStep(
            "Verify Snowflake schema",
            "Verify the configured Snowflake schema exists and we have the necessary "
            "permissions to use it.",
            (*_SF, "warehouse", "database", "schema"),
        ),
    ),
    "Databricks": (
        TestStep(
            "Establish connection to Databricks",
            "Attempt to establish a Databricks connection with the provided configuration values.",
            _DBX,
        ),
        TestStep(
            "Verify Databricks catalog",
            "Verify the configured Databricks catalog exists and we have the necessary "
            "permissions to use it.",
            (*_DBX, "catalog"),
        ),
        TestStep(
            "Verify Databricks schema",
            "Verify the configured Databricks schema exists and we have the necessary "
            "permissions to use it.",
            (*_DBX, "catalog", "schema"),
        ),
        TestStep(
            "Verify Databricks table",
            "Ensure the configured Databricks table already exists or that we have the required "
            "permissions to create it. Additionally, when creating this test table, we will "
            "attempt to delete it.",
            (*_DBX, "catalog", "schema", "table_name"),
        ),
        TestStep(
            "Verify permissions to create a Databricks volume",
            "Ensure we have the required permissions to create a Databricks volume. We need to "
            "create temporary volumes as part of the batch export process.",
            (*_DBX, "catalog", "schema", "table_name"),
        ),
    ),
    "AzureBlob": (
        TestStep(
            "Check Azure Blob container exists",
            "Ensure the configured container exists and that we have the required permissions "
            "to access it.",
            ("connection_string", "container_name"),
        ),
    ),
}
