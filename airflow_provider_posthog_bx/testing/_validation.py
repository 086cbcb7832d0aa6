"""Request validation with PostHog's (DRF's) messages: export payloads and backfill bounds.

The export serializer is ``BatchExportSerializer`` (products/batch_exports/backend/presentation/
views/batch_export/exports.py) with its nested ``BatchExportDestinationSerializer``
(.../destinations.py). DRF validates the fields in ``Meta.fields`` order and reports the first
error only; a ``PermissionDenied`` raised by a field validator (feature flags) escapes at once,
even past earlier field errors; ``validate()`` runs only when every field passed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import available_timezones

from . import _errors
from ._destinations import (
    ALLOWED_HTTP_URLS,
    BASE_FIELDS,
    CONFIG_FIELDS,
    DESTINATION_TYPES,
    INTEGRATION_KINDS,
    LEGACY_DESTINATION_TYPES,
    S3_FAMILY,
    SUPPORTED_COMPRESSIONS,
)
from ._model import MODELS, BatchExport, Integration
from ._timeutil import INTERVALS, local_midnight, parse_iso

UTC = timezone.utc

_TIMEZONES = frozenset(available_timezones()) | {"UTC"}
_INT = re.compile(r"^-?\d+(\.0*)?\s*$")
_DATETIME_FORMAT_MSG = (
    "Datetime has wrong format. Use one of these formats instead: "
    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
)
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
# rest_framework/fields.py, BooleanField.TRUE_VALUES / FALSE_VALUES (1 and 0 match 1.0/0.0).
_TRUE: frozenset[object] = frozenset(
    {"t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}
    | {"1", 1}  # 1 == True == 1.0
)
_FALSE: frozenset[object] = frozenset(
    {"f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}
    | {"0", 0}  # 0 == False == 0.0
)
# posthog/utils.py str_to_bool, used for str -> bool config coercion: never fails.
_STR_TRUE = frozenset({"y", "yes", "t", "true", "on", "1"})


def required(attr: str) -> _errors.ApiError:
    """DRF's missing-field error."""
    return _errors.validation("This field is required.", attr, code="required")


def not_null(attr: str) -> _errors.ApiError:
    """DRF's null-field error."""
    return _errors.validation("This field may not be null.", attr, code="null")


def choice(value: object, attr: str) -> _errors.ApiError:
    """DRF's invalid-choice error."""
    return _errors.validation(f'"{value}" is not a valid choice.', attr, code="invalid_choice")


def integer(value: object, attr: str, low: int, high: int) -> int:
    """DRF IntegerField with min/max."""
    if isinstance(value, bool) or not (isinstance(value, int) or _INT.match(str(value).strip())):
        raise _errors.validation("A valid integer is required.", attr)
    number = int(float(str(value).strip())) if not isinstance(value, int) else value
    if number > high:
        raise _errors.validation(
            f"Ensure this value is less than or equal to {high}.", attr, "max_value"
        )
    if number < low:
        raise _errors.validation(
            f"Ensure this value is greater than or equal to {low}.", attr, "min_value"
        )
    return number


def boolean(value: object, attr: str) -> bool:
    """DRF BooleanField: its true/false word sets; ``null`` is "may not be null"."""
    if value is None:
        raise not_null(attr)
    try:
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    except TypeError:  # unhashable (a list or an object): DRF falls through to "invalid"
        pass
    raise _errors.validation("Must be a valid boolean.", attr)


def drf_datetime(value: object, attr: str) -> datetime:
    """DRF DateTimeField (naive values are read as UTC, the emulator's TIME_ZONE)."""
    parsed = parse_iso(value) if isinstance(value, str) else None
    if parsed is None:
        raise _errors.validation(_DATETIME_FORMAT_MSG, attr)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _char(value: object, attr: str, allow_null: bool = False) -> str | None:
    """DRF CharField (trimmed, no blanks)."""
    if value is None:
        if allow_null:
            return None
        raise not_null(attr)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _errors.validation("Not a valid string.", attr)
    text = str(value).strip()
    if not text:
        raise _errors.validation("This field may not be blank.", attr, code="blank")
    return text


def _key_list(value: object, attr: str) -> list[str] | None:
    """``ListField(child=CharField(), allow_null=True, allow_empty=False)``."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise _errors.validation(
            f'Expected a list of items but got type "{type(value).__name__}".', attr, "not_a_list"
        )
    if not value:
        raise _errors.validation("This list may not be empty.", attr, code="empty")
    out = []
    for index, item in enumerate(value):
        text = _char(item, f"{attr}__{index}")
        assert text is not None
        out.append(text)
    return out


@dataclass
class Rules:
    """What a request is validated against besides its body.

    :param patch: the request is a PATCH (config required keys are not enforced; fields are
        partial).
    :param integrations: the team's Integration rows by id (``TeamScopedPrimaryKeyRelatedField``).
    :param high_frequency_enabled: the team's flag for "every 5/15 minutes" intervals.
    :param legacy: an older deployment, which still has the "S3" type with inline keys.
    """

    patch: bool
    integrations: Mapping[int, Integration]
    high_frequency_enabled: bool
    legacy: bool = False


class _Fields:
    """DRF's field loop: the first ValidationError is kept, anything else escapes at once."""

    def __init__(self) -> None:
        self.first: _errors.ApiError | None = None

    def run(self, check: Callable[[], None]) -> None:
        if self.first is not None:
            try:
                check()
            except _errors.ApiError as error:
                if error.type != "validation_error":
                    raise
            return
        try:
            check()
        except _errors.ApiError as error:
            if error.type != "validation_error":
                raise
            self.first = error

    def done(self) -> None:
        if self.first is not None:
            raise self.first


def validate_export(
    data: object,
    instance: BatchExport | None,
    rules: Rules,
    destination_of: BatchExport | None = None,
) -> dict[str, Any]:
    """Validate a create/PUT/PATCH body; returns the cleaned fields that were sent.

    :param destination_of: the export whose destination ``validate_destination`` compares
        against (default ``instance``); a detail action (``run_test_step``) validates a create
        body against its export this way.

    ``destination`` comes back as ``destination_type``, ``config`` (coerced, merged under the
    stored config on update) and, when sent or kept, ``integration`` (an id).
    """
    if not isinstance(data, dict):
        kind = "list" if isinstance(data, list) else type(data).__name__
        raise _errors.validation(f"Invalid data. Expected a dictionary, but got {kind}.")
    out: dict[str, Any] = {}
    full = not rules.patch
    fields = _Fields()

    def field(name: str, parse: Callable[[object], Any], needed: bool = False) -> None:
        def check() -> None:
            if name in data:
                out[name] = parse(data[name])
            elif needed and full:
                raise required(name)

        fields.run(check)

    field("name", lambda v: _char(v, "name"), needed=True)

    def model(value: object) -> str:
        if value is None:
            raise not_null("model")
        if value not in MODELS:
            raise choice(value, "model")
        if value == "hogql":  # validate_model: check_hogql_batch_exports_enabled
            raise _errors.permission_denied("HogQL batch exports are not enabled for this team.")
        if instance is not None and value != instance.model:
            # validate_model: a field error, attr "model"
            raise _errors.validation(
                "Changing models is not supported. Create a new batch export instead.", "model"
            )
        return str(value)

    if "model" in data:
        field("model", model)
    elif instance is None:
        out["model"] = "events"  # CreateOnlyDefault
    stored = destination_of if destination_of is not None else instance
    fields.run(lambda: _destination_field(data, stored, rules, out))

    def interval(value: object) -> str:
        if value is None:
            raise not_null("interval")
        if not isinstance(value, str) or value not in INTERVALS:
            raise choice(value, "interval")
        if value not in ("hour", "day", "week") and not rules.high_frequency_enabled:
            # validate_interval: check_high_frequency_batch_exports_enabled (PermissionDenied)
            raise _errors.permission_denied(
                "Higher frequency batch exports are not enabled for this team."
            )
        return value

    field("interval", interval, needed=True)
    field("paused", lambda v: boolean(v, "paused"))
    for name in ("last_paused_at", "start_at", "end_at"):
        field(name, _nullable_datetime(name))
    field("hogql_query", lambda v: _char(v, "hogql_query", allow_null=True))
    field("hogql_modifiers", lambda v: v)
    field("primary_key", lambda v: _key_list(v, "primary_key"))
    field("version_key", lambda v: _key_list(v, "version_key"))

    def incremental(value: object) -> str:
        if value not in ("APPEND", "MERGE"):
            raise choice(value, "incremental_mode")
        return str(value)

    field("incremental_mode", incremental)
    field("filters", lambda v: v)

    def tz(value: object) -> str:
        if value is not None and value not in _TIMEZONES:
            raise choice(value, "timezone")
        return str(value) if value is not None else "UTC"  # validate_timezone: None -> UTC

    field("timezone", tz)
    # validate_offset_*: the interval is the raw `initial_data` one, else the instance's.
    raw_interval = data.get("interval") or (instance.interval if instance else None)

    def offset_day(value: object) -> int | None:
        if value is None:
            return None
        day = integer(value, "offset_day", 0, 6)
        if raw_interval != "week":
            raise _errors.validation(
                "offset_day is not applicable for non-weekly intervals", "offset_day"
            )
        return day

    def offset_hour(value: object) -> int | None:
        if value is None:
            return None
        hour = integer(value, "offset_hour", 0, 23)
        if raw_interval not in ("day", "week"):
            raise _errors.validation(
                "offset_hour is not applicable for non-daily/weekly intervals", "offset_hour"
            )
        return hour

    field("offset_day", offset_day)
    field("offset_hour", offset_hour)
    fields.done()
    _interval_offset(out, full)
    _validate_object(out, instance)
    return out


def _nullable_datetime(attr: str) -> Callable[[object], datetime | None]:
    def parse(value: object) -> datetime | None:
        return None if value is None else drf_datetime(value, attr)

    return parse


def _interval_offset(out: dict[str, Any], full: bool) -> None:
    """``_validate_interval_offset``: offsets as the single ``interval_offset`` PostHog stores."""
    interval = out.get("interval")
    if interval is None:
        return
    day_sent, hour_sent = "offset_day" in out, "offset_hour" in out
    day, hour = out.pop("offset_day", None), out.pop("offset_hour", None)
    if interval == "day":
        if hour_sent:
            out["offset_hour"] = hour
        elif full:
            out["offset_hour"] = None
        out["offset_day"] = None
    elif interval == "week":
        if day_sent or hour_sent:  # day * 86400 + hour * 3600: an omitted one becomes 0
            out["offset_day"], out["offset_hour"] = day or 0, hour or 0
        elif full:
            out["offset_day"] = out["offset_hour"] = None
    else:
        out["offset_day"] = out["offset_hour"] = None


def _validate_object(out: dict[str, Any], instance: BatchExport | None) -> None:
    """``BatchExportSerializer.validate``: non-field and cross-field rules (first error)."""
    model = out["model"] if instance is None else instance.model
    if out.get("destination_type") == "HTTP" and model != "events":
        raise _errors.validation("HTTP batch exports only support the events model")
    for name, wanted in (
        ("filters", "events"),
        ("hogql_modifiers", "hogql"),
        ("primary_key", "hogql"),
        ("version_key", "hogql"),
        ("hogql_query", "hogql"),  # no team here has grandfathered events-model queries
    ):
        if out.get(name) is not None and model != wanted:
            raise _errors.validation(
                f"'{name}' is only supported for '{wanted}' not '{model}' model", name
            )
    if model == "hogql":
        query = out.get("hogql_query", instance.hogql_query if instance else None)
        if query is None:
            raise _errors.validation(
                "'hogql_query' is required when 'model' is 'hogql'", "hogql_query"
            )
        mode = out.get("incremental_mode", instance.incremental_mode if instance else None)
        key = out.get("primary_key", instance.primary_key if instance else None)
        if not key and mode == "MERGE":
            raise _errors.validation(
                "'primary_key' is required when 'incremental_mode' is 'MERGE'", "primary_key"
            )


# -- destination ----------------------------------------------------------------------------


def _destination_field(
    data: dict[str, Any], instance: BatchExport | None, rules: Rules, out: dict[str, Any]
) -> None:
    if "destination" not in data:
        if not rules.patch:
            raise required("destination")
        return
    value = data["destination"]
    if value is None:
        raise not_null("destination")
    attrs = _destination_serializer(value, rules)
    out.update(_validate_destination(attrs, instance, rules))


def _destination_serializer(value: object, rules: Rules) -> dict[str, Any]:
    """``BatchExportDestinationSerializer``: its fields, then its ``validate()``.

    Errors of ``validate()`` are non-field errors of the nested serializer, so their attr is
    ``destination__non_field_errors`` (drf-exceptions-hog joins the keys).
    """
    nested = "destination__non_field_errors"
    if not isinstance(value, dict):
        raise _errors.validation(
            f"Invalid data. Expected a dictionary, but got {type(value).__name__}.", nested
        )
    attrs: dict[str, Any] = {}
    fields = _Fields()
    types = LEGACY_DESTINATION_TYPES if rules.legacy else DESTINATION_TYPES

    def dtype() -> None:
        if "type" not in value:
            if not rules.patch:
                raise required("destination__type")
            return
        if value["type"] is None:
            raise not_null("destination__type")
        if not isinstance(value["type"], str) or value["type"] not in types:
            raise choice(value["type"], "destination__type")
        attrs["type"] = value["type"]

    def config() -> None:
        if "config" not in value:
            if not rules.patch:
                raise required("destination__config")
            return
        if value["config"] is None:
            raise not_null("destination__config")
        attrs["config"] = value["config"]

    def integration(name: str) -> None:
        if name in value:
            attrs["integration"] = _integration(value[name], f"destination__{name}", rules)

    fields.run(dtype)
    fields.run(config)
    fields.run(lambda: integration("integration"))
    fields.run(lambda: integration("integration_id"))
    fields.done()
    if "type" not in attrs or "config" not in attrs:
        # `attrs["type"]`/`attrs["config"]` in validate(): a PATCH without them is a KeyError.
        raise _errors.server_error()
    if not isinstance(attrs["config"], dict):
        raise _errors.server_error()  # `config.keys()` on a JSON list/string: AttributeError
    attrs["config"] = _check_config(attrs["type"], attrs["config"], rules.patch, nested)
    return attrs


def _integration(value: object, attr: str, rules: Rules) -> Integration | None:
    """``TeamScopedPrimaryKeyRelatedField``: an Integration of this team, by primary key."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _errors.validation(
            f"Incorrect type. Expected pk value, received {type(value).__name__}.",
            attr,
            "incorrect_type",
        )
    try:
        key = int(value)
    except ValueError:
        raise _errors.validation(
            f"Incorrect type. Expected pk value, received {type(value).__name__}.",
            attr,
            "incorrect_type",
        ) from None
    found = rules.integrations.get(key)
    if found is None:
        raise _errors.validation(
            f'Invalid pk "{value}" - object does not exist.', attr, "does_not_exist"
        )
    return found


def _check_config(dtype: str, config: dict[str, Any], patch: bool, attr: str) -> dict[str, Any]:
    """``BatchExportDestinationSerializer.validate``: unknown, missing, wrongly typed keys."""
    declared = CONFIG_FIELDS[dtype]
    names = {f.name for f in declared}
    unknown = sorted(config.keys() - names - BASE_FIELDS)
    if unknown:
        listed = ", ".join(f"'{name}'" for name in unknown)
        raise _errors.validation(f"Configuration has unknown field/s: {listed}", attr)
    out = dict(config)
    for spec in declared:
        if spec.name not in config:
            if spec.required and not patch:
                raise _errors.validation(
                    f"Configuration missing required field: '{spec.name}'", attr
                )
            continue
        value = config[spec.name]
        kind = spec.checked
        if kind is None or isinstance(value, kind):
            continue  # isinstance(True, int) holds, as in PostHog
        if isinstance(value, str) and kind is bool:
            out[spec.name] = value.lower() in _STR_TRUE  # str_to_bool never fails
            continue
        if isinstance(value, str) and kind is int:
            try:
                out[spec.name] = int(value)
                continue
            except ValueError:
                pass
        raise _errors.validation(
            f"Configuration has invalid type: got '{type(value).__name__}', "
            f"expected '{kind.__name__}'",
            attr,
        )
    return out


def merge_config(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``recursive_dict_merge``: dicts merge key by key; anything else replaces."""
    merged = {**old, **new}
    for key, value in merged.items():
        if isinstance(value, dict):
            left, right = old.get(key), new.get(key)
            merged[key] = merge_config(
                left if isinstance(left, dict) else {}, right if isinstance(right, dict) else {}
            )
    return merged


def writes_compressed_parquet(config: Mapping[str, Any]) -> bool:
    """Parquet file names carry the codec (``_writes_compressed_parquet``)."""
    return config.get("file_format") == "Parquet" and config.get("compression") is not None


def _validate_destination(
    attrs: dict[str, Any], instance: BatchExport | None, rules: Rules
) -> dict[str, Any]:
    """``BatchExportSerializer.validate_destination``: a field error, attr ``destination``."""
    dtype: str = attrs["type"]
    config: dict[str, Any] = attrs["config"]
    existing = instance.config if instance is not None else {}

    def fail(message: str) -> _errors.ApiError:
        return _errors.validation(message, "destination")

    if instance is not None and dtype != instance.destination_type:
        raise fail(
            f"Cannot change destination type from '{instance.destination_type}' to '{dtype}'. "
            "Delete this batch export and create a new one with the new destination type."
        )
    if config.get("legacy_parquet_extension") is True and not _legacy_parquet(existing):
        raise fail(
            "'legacy_parquet_extension' can only stay on for an export that already writes the "
            "compression codec into its Parquet file names. It cannot be turned on for a new "
            "export, or turned back on once an export moved to the standard '.parquet' "
            "extension."
        )
    merged = merge_config(existing, config)
    if dtype == "HTTP":
        url = merged.get("url")
        if url and url not in ALLOWED_HTTP_URLS:  # SSRF protection
            raise fail(f"Invalid destination URL: {url}")
    sent = "integration" in attrs
    integration: Integration | None = attrs.get("integration")
    kept = instance.integration if instance is not None else None
    if dtype in ("Snowflake", *S3_FAMILY) and integration is None and not sent and kept:
        # A PATCH may send config alone, which keeps the export's existing integration; an
        # explicit `integration: null` is a removal.
        integration = rules.integrations.get(kept)
    label = {"AzureBlob": "Azure Blob"}.get(dtype, dtype)
    creating = instance is None
    needs_one = dtype in ("Snowflake", "Databricks", "BigQuery", "AzureBlob", *S3_FAMILY) or (
        dtype in ("Postgres", "Redshift") and creating
    )
    if dtype == "Redshift" and kept is not None and integration is None:
        raise fail(
            "Cannot remove the integration from a Redshift batch export that uses one. "
            "Re-send its `integration` to keep it (or a different one to swap)."
        )
    if needs_one and integration is None:
        raise fail(f"Integration is required for {label} batch exports")
    if dtype in S3_FAMILY:
        empty = [
            key
            for key in ("bucket_name", "region", "prefix")
            if isinstance(config.get(key), str) and not config[key].strip()
        ]
        if empty:
            raise fail(f"The following inputs are empty: {empty}")
    if integration is not None and dtype in INTEGRATION_KINDS:
        wanted = INTEGRATION_KINDS[dtype]
        if integration.kind != wanted:
            raise fail(_wrong_kind(dtype, integration.kind))
    if dtype in (*S3_FAMILY, "AzureBlob"):
        _file_format(merged, fail)
    if dtype == "Redshift":
        _redshift(merged, integration, fail)
    if dtype == "Workflows":
        raise _errors.permission_denied("Backfilling Workflows is not enabled for this team.")
    out: dict[str, Any] = {"destination_type": dtype, "config": config}
    if sent:
        out["integration"] = integration.id if integration is not None else None
    return out


def _legacy_parquet(existing: Mapping[str, Any]) -> bool:
    """``_uses_legacy_parquet_extension`` on the stored config."""
    stored = existing.get("legacy_parquet_extension")
    if isinstance(stored, str):
        stored = stored.lower() == "true"
    return writes_compressed_parquet(existing) if stored is None else bool(stored)


def _wrong_kind(dtype: str, kind: str) -> str:
    if dtype in S3_FAMILY:
        return f"Integration provided is not an AWS S3 integration (got kind='{kind}')"
    return {
        "Databricks": "Integration is not a Databricks integration.",
        "Postgres": "Integration is not a PostgreSQL integration.",
        "BigQuery": "Integration is not a Google Cloud service account integration.",
        "AzureBlob": "Integration is not an Azure Blob integration.",
        "Redshift": "Integration is not a Redshift integration.",
        # SnowflakeIntegration(integration) raises SnowflakeIntegrationError: its wording is
        # in posthog/models/integration.py, not read; UNVERIFIED.
        "Snowflake": "Integration is not a Snowflake integration.",
    }[dtype]


def _file_format(merged: Mapping[str, Any], fail: Callable[[str], _errors.ApiError]) -> None:
    file_format = merged.get("file_format", "JSONLines")  # JSONLines: the legacy default
    if file_format not in SUPPORTED_COMPRESSIONS:
        raise fail(
            f"File format {file_format} is not supported. "
            f"Supported file formats are {list(SUPPORTED_COMPRESSIONS)}"
        )
    compression = merged.get("compression")
    if compression and compression not in SUPPORTED_COMPRESSIONS[file_format]:
        raise fail(
            f"Compression {compression} is not supported for file format {file_format}. "
            f"Supported compressions are {SUPPORTED_COMPRESSIONS[file_format]}"
        )


def _redshift(
    merged: Mapping[str, Any],
    integration: Integration | None,
    fail: Callable[[str], _errors.ApiError],
) -> None:
    if integration is not None and "host" not in integration.config and not merged.get("host"):
        raise fail(
            "A 'host' is required when using an AWS Redshift integration: "
            "set it to the cluster or workgroup endpoint."
        )
    if merged.get("mode") != "COPY":
        return
    copy_inputs = merged.get("copy_inputs") or {}
    if not copy_inputs:
        raise fail("Missing required inputs for 'COPY'")
    if (
        not isinstance(copy_inputs, dict)
        or {
            "s3_bucket",
            "region_name",
            "authorization",
            "bucket_credentials",
        }
        - copy_inputs.keys()
    ):
        raise fail("Missing required input for 'COPY'")
    keys = {"aws_access_key_id", "aws_secret_access_key"}
    bucket, auth = copy_inputs["bucket_credentials"], copy_inputs["authorization"]
    if not _integration_id(bucket) and (not isinstance(bucket, dict) or keys - bucket.keys()):
        raise fail("Missing required bucket credentials for 'COPY'")
    if _integration_id(auth):
        return
    if isinstance(auth, dict):
        if keys - auth.keys():
            raise fail("Missing required credentials for 'COPY'")
    elif isinstance(auth, str):
        if not auth.strip():
            raise fail("Missing required IAM role for 'COPY'")
    else:
        raise fail(
            "Authorization for 'COPY' must be an IAM role ARN, AWS credentials, or an "
            "integration ID."
        )


def _integration_id(value: object) -> bool:
    """``_coerce_integration_id`` found an id (int or digit string, not bool)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


def unpause_backfill(data: object) -> bool:
    """``BatchExportUnpauseRequestSerializer``: ``backfill``, a DRF boolean, default false."""
    if not isinstance(data, dict):
        kind = "list" if isinstance(data, list) else type(data).__name__
        raise _errors.validation(f"Invalid data. Expected a dictionary, but got {kind}.")
    return boolean(data["backfill"], "backfill") if "backfill" in data else False


def backfill_bound(value: object, export: BatchExport) -> datetime:
    """Parse one backfill bound per the export's interval (PostHog's ``validate_date_input``)."""
    text = str(value)
    if export.interval in ("day", "week"):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            if parse_iso(text) is not None:
                raise _errors.validation(
                    f"Input '{text}' is not a valid ISO formatted date. "
                    "Daily or weekly batch export "
                    "backfills expect only the date component, but a time was included."
                ) from None
            raise _errors.validation(f"Input '{text}' is not a valid ISO formatted date.") from None
        if export.interval == "week":
            wanted = export.offset_day or 0
            actual = (day.weekday() + 1) % 7  # Python Monday=0 -> PostHog Sunday=0
            if actual != wanted:
                raise _errors.validation(
                    f"Input {day.isoformat()} is not on the correct day of the week for this batch "
                    f"export. {day.isoformat()} is a {_WEEKDAYS[actual]} but this batch export is "
                    f"configured to run weekly on {_WEEKDAYS[wanted]}."
                )
        return local_midnight(day, export.offset_hour or 0, export.timezone)
    parsed = parse_iso(text)
    if parsed is None:
        raise _errors.validation(f"Input {text} is not a valid ISO formatted datetime.")
    if parsed.tzinfo is None:
        raise _errors.validation(f"Input {text} is naive.")
    return parsed
