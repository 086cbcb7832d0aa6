"""Request validation with PostHog's (DRF's) messages: export payloads and backfill bounds."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import available_timezones

from . import _errors
from ._model import DESTINATION_TYPES, MODELS, BatchExport
from ._timeutil import INTERVALS, local_midnight, parse_iso

UTC = timezone.utc

_TIMEZONES = frozenset(available_timezones()) | {"UTC"}
_INT = re.compile(r"^-?\d+(\.0*)?$")
_DATETIME_FORMAT_MSG = (
    "Datetime has wrong format. Use one of these formats instead: "
    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
)
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_TRUE = frozenset({"true", "True", "1", "yes", "on"})
_FALSE = frozenset({"false", "False", "0", "no", "off"})


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
    """DRF BooleanField."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, str)) and str(value) in _TRUE:
        return True
    if isinstance(value, (int, str)) and str(value) in _FALSE:
        return False
    raise _errors.validation("Must be a valid boolean.", attr)


def drf_datetime(value: object, attr: str) -> datetime:
    """DRF DateTimeField (naive values are read as UTC, the emulator's TIME_ZONE)."""
    parsed = parse_iso(value) if isinstance(value, str) else None
    if parsed is None:
        raise _errors.validation(_DATETIME_FORMAT_MSG, attr)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def validate_export(
    data: object, instance: BatchExport | None, partial: bool, high_frequency_enabled: bool
) -> dict[str, Any]:
    """Validate a create/PUT/PATCH body; returns the cleaned fields that were sent.

    Field errors are raised in serializer field order (first error only, as PostHog reports).
    """
    if not isinstance(data, dict):
        kind = "list" if isinstance(data, list) else type(data).__name__
        raise _errors.validation(f"Invalid data. Expected a dictionary, but got {kind}.")
    out: dict[str, Any] = {}
    full = not partial
    if "name" in data:
        name = data["name"]
        if name is None:
            raise not_null("name")
        if not isinstance(name, (str, int, float)) or isinstance(name, bool):
            raise _errors.validation("Not a valid string.", "name")
        if not str(name).strip():
            raise _errors.validation("This field may not be blank.", "name", code="blank")
        out["name"] = str(name).strip()
    elif full:
        raise required("name")
    if "model" in data:
        if data["model"] is None:
            raise not_null("model")
        if data["model"] not in MODELS:
            raise choice(data["model"], "model")
        out["model"] = data["model"]
    elif instance is None:
        out["model"] = "events"  # CreateOnlyDefault
    if "destination" in data:
        out.update(_destination(data["destination"], instance))
    elif full:
        raise required("destination")
    if "interval" in data:
        interval = data["interval"]
        if interval is None:
            raise not_null("interval")
        if interval not in INTERVALS:
            raise choice(interval, "interval")
        if interval not in ("hour", "day", "week") and not high_frequency_enabled:
            raise _errors.permission_denied(
                "Higher frequency batch exports are not enabled for this team."
            )
        out["interval"] = interval
    elif full:
        raise required("interval")
    if "paused" in data:
        out["paused"] = boolean(data["paused"], "paused")
    for attr in ("start_at", "end_at"):
        if attr in data:
            out[attr] = None if data[attr] is None else drf_datetime(data[attr], attr)
    for attr in ("hogql_query",):
        if attr in data:
            if data[attr] is not None and not isinstance(data[attr], str):
                raise _errors.validation("Not a valid string.", attr)
            out[attr] = data[attr]
    for attr in ("hogql_modifiers", "filters", "primary_key", "version_key"):
        if attr in data:
            out[attr] = data[attr]
    if "incremental_mode" in data:
        if data["incremental_mode"] not in ("APPEND", "MERGE"):
            raise choice(data["incremental_mode"], "incremental_mode")
        out["incremental_mode"] = data["incremental_mode"]
    if "timezone" in data:
        tz = data["timezone"]
        if tz is not None and tz not in _TIMEZONES:
            raise choice(tz, "timezone")
        out["timezone"] = tz or "UTC"
    interval = data.get("interval") or (instance.interval if instance else None)
    if "offset_day" in data and data["offset_day"] is not None:
        out["offset_day"] = integer(data["offset_day"], "offset_day", 0, 6)
        if interval != "week":
            raise _errors.validation(
                "offset_day is not applicable for non-weekly intervals", "offset_day"
            )
    elif "offset_day" in data:
        out["offset_day"] = None
    if "offset_hour" in data and data["offset_hour"] is not None:
        out["offset_hour"] = integer(data["offset_hour"], "offset_hour", 0, 23)
        if interval not in ("day", "week"):
            raise _errors.validation(
                "offset_hour is not applicable for non-daily/weekly intervals", "offset_hour"
            )
    elif "offset_hour" in data:
        out["offset_hour"] = None
    _validate_object(out, instance)
    return out


def _destination(value: object, instance: BatchExport | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        kind = "list" if isinstance(value, list) else type(value).__name__
        raise _errors.validation(
            f"Invalid data. Expected a dictionary, but got {kind}.", "destination"
        )
    if "type" not in value:
        raise required("destination__type")
    dtype = value["type"]
    if dtype not in DESTINATION_TYPES:
        raise choice(dtype, "destination__type")
    config = value.get("config", {})
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise _errors.validation("Configuration must be a JSON object.", "destination__config")
    # Per-type required/unknown config keys and Integration requirements are not enforced:
    # the emulator accepts any config object (see the reference, §6.2, for the real rules).
    if instance is not None and dtype != instance.destination_type:
        raise _errors.validation(
            f"Cannot change destination type from '{instance.destination_type}' to '{dtype}'. "
            "Delete this batch export and create a new one with the new destination type.",
            "destination",
        )
    integration = value.get("integration", value.get("integration_id"))
    out: dict[str, Any] = {"destination_type": dtype, "config": config}
    if "integration" in value or "integration_id" in value:
        out["integration"] = integration
    return out


def _validate_object(out: dict[str, Any], instance: BatchExport | None) -> None:
    model = out.get("model", instance.model if instance else "events")
    dtype = out.get("destination_type", instance.destination_type if instance else None)
    if dtype == "HTTP" and model != "events":
        raise _errors.validation("HTTP batch exports only support the events model")
    if instance is not None and model != instance.model:
        # attr null: the reference words this as a non-field error raised on update.
        raise _errors.validation(
            "Changing models is not supported. Create a new batch export instead."
        )
    if instance is None and model == "hogql":
        raise _errors.permission_denied("HogQL batch exports are not enabled for this team.")


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
