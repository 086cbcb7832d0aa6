"""Check backfill bounds and format them the way PostHog wants for an export's interval.

PostHog takes offset-aware ISO datetimes for hourly and sub-hourly exports and ``YYYY-MM-DD``
dates for daily and weekly ones (combined with the export's ``offset_hour`` in its
``timezone``); weekly bounds must fall on the export's ``offset_day`` (0 = Sunday). Checking
here means a bad value fails the task before any request creates work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_posthog_bx.api import DATE_ONLY_INTERVALS, INTERVAL_SECONDS, fromisoformat
from airflow_provider_posthog_bx.exceptions import PostHogInputError

log = logging.getLogger(__name__)

WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
ACCEPTED = (
    "pass a timezone-aware datetime, a date, or an ISO string such as "
    "'2026-01-01T00:00:00+00:00' or '2026-01-01'"
)


@dataclass(frozen=True)
class BackfillBounds:
    """Bounds ready to send, and the instants they stand for (aware, UTC)."""

    start_at: str
    end_at: str
    start: datetime
    end: datetime


def parse_bound(param: str, value: Any) -> datetime | date:
    """An aware datetime or a date from a datetime, date or ISO string."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PostHogInputError(param, value.isoformat(), "must be timezone-aware", ACCEPTED)
        return value
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not value.strip():
        raise PostHogInputError(
            param, value, "must be a datetime, a date or an ISO string", ACCEPTED
        )
    text = value.strip()
    if len(text) == 10:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise PostHogInputError(param, value, "is not a valid ISO date", ACCEPTED) from None
    try:
        parsed = fromisoformat(text)
    except ValueError:
        raise PostHogInputError(param, value, "is not a valid ISO datetime", ACCEPTED) from None
    if parsed.tzinfo is None:
        raise PostHogInputError(param, value, "must be timezone-aware", ACCEPTED)
    return parsed


def export_timezone(batch_export: dict[str, Any]) -> tzinfo:
    name = batch_export.get("timezone") or "UTC"
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def format_bounds(
    batch_export: dict[str, Any],
    start_at: Any,
    end_at: Any,
    *,
    now: datetime | None = None,
) -> BackfillBounds:
    """Validate ``start_at``/``end_at`` for this export and format them for PostHog.

    :param batch_export: the export as PostHog returns it (``interval``, ``timezone``,
        ``offset_day``, ``offset_hour`` are used).
    :raises PostHogInputError: naming the parameter, the value and what is accepted.
    """
    interval = str(batch_export.get("interval"))
    if interval not in INTERVAL_SECONDS:
        raise PostHogInputError(
            "batch export interval",
            interval,
            "is not one this provider knows",
            f"expected one of {', '.join(INTERVAL_SECONDS)}",
        )
    tz = export_timezone(batch_export)
    start = parse_bound("start_at", start_at)
    end = parse_bound("end_at", end_at)
    if interval in DATE_ONLY_INTERVALS:
        start_day = _as_day("start_at", start, batch_export, tz)
        end_day = _as_day("end_at", end, batch_export, tz)
        bounds = BackfillBounds(
            start_day.isoformat(),
            end_day.isoformat(),
            _day_start(start_day, batch_export, tz),
            _day_start(end_day, batch_export, tz),
        )
    else:
        start_dt = _as_instant(start, tz)
        end_dt = _as_instant(end, tz)
        bounds = BackfillBounds(_iso(start_dt), _iso(end_dt), start_dt, end_dt)
    if bounds.start >= bounds.end:
        raise PostHogInputError(
            "start_at",
            bounds.start_at,
            f"must be before end_at ({bounds.end_at})",
            "pass a start_at earlier than end_at",
        )
    current = now or datetime.now(timezone.utc)
    if bounds.end > current:
        raise PostHogInputError(
            "end_at",
            bounds.end_at,
            f"is in the future (now is {_iso(current)})",
            "PostHog only backfills data up to now; pass an end_at in the past",
        )
    if (bounds.end - bounds.start).total_seconds() < INTERVAL_SECONDS[interval]:
        log.warning(
            "The range %s - %s is shorter than one %r interval: PostHog will export nothing",
            bounds.start_at,
            bounds.end_at,
            interval,
        )
    return bounds


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat()


def _as_instant(value: datetime | date, tz: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    return datetime.combine(value, time(0), tzinfo=tz).astimezone(timezone.utc)


def _as_day(param: str, value: datetime | date, batch_export: dict[str, Any], tz: tzinfo) -> date:
    """The date PostHog expects for a daily/weekly export: the bound's day in its timezone."""
    if isinstance(value, datetime):
        local = value.astimezone(tz)
        offset_hour = int(batch_export.get("offset_hour") or 0)
        if (local.hour, local.minute, local.second, local.microsecond) != (offset_hour, 0, 0, 0):
            log.warning(
                "%s %s is not at the start of an interval (%02d:00 %s); PostHog backfills whole "
                "%ss, so %s is sent as %s",
                param,
                value.isoformat(),
                offset_hour,
                tz,
                batch_export.get("interval"),
                param,
                local.date().isoformat(),
            )
        day = local.date()
    else:
        day = value
    if batch_export.get("interval") == "week":
        offset_day = int(batch_export.get("offset_day") or 0)
        weekday = day.isoweekday() % 7  # PostHog counts from Sunday = 0
        if weekday != offset_day:
            previous = day - timedelta(days=(weekday - offset_day) % 7)
            raise PostHogInputError(
                param,
                day.isoformat(),
                f"is a {WEEKDAYS[weekday]} but this batch export runs weekly on "
                f"{WEEKDAYS[offset_day]}",
                f"pass a {WEEKDAYS[offset_day]} such as {previous.isoformat()}",
            )
    return day


def _day_start(day: date, batch_export: dict[str, Any], tz: tzinfo) -> datetime:
    offset_hour = int(batch_export.get("offset_hour") or 0)
    return datetime.combine(day, time(offset_hour), tzinfo=tz).astimezone(timezone.utc)
