"""Backfill bounds: checked before anything is sent, formatted for the export's interval.

PostHog takes offset-aware ISO datetimes for hourly and sub-hourly exports and ``YYYY-MM-DD``
dates for daily and weekly ones (combined with the export's ``offset_hour`` in its
``timezone``); weekly bounds must fall on the export's ``offset_day`` (0 = Sunday).

Two steps: :func:`parse_bounds` needs only the values (naive, unreadable, reversed or future
bounds fail the task before any request); :func:`format_bounds` then needs the export, for its
interval, timezone and offsets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_posthog_bx.core.time import (
    UTC,
    format_instant,
    parse_instant,
    parse_instant_or_date,
)
from airflow_provider_posthog_bx.exceptions import PostHogInputError

log = logging.getLogger(__name__)

# Export intervals and their length in seconds.
INTERVAL_SECONDS: Mapping[str, int] = {
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "every 5 minutes": 300,
    "every 15 minutes": 900,
}
# Intervals whose backfill bounds PostHog wants as dates (YYYY-MM-DD), not datetimes.
DATE_ONLY_INTERVALS = frozenset({"day", "week"})
WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")

Bound = datetime | date


@dataclass(frozen=True)
class BackfillBounds:
    """Bounds ready to send, and the instants they stand for (aware, UTC)."""

    start_at: str
    end_at: str
    start: datetime
    end: datetime


def parse_bounds(start_at: Any, end_at: Any, *, now: datetime | None = None) -> tuple[Bound, Bound]:
    """Read ``start_at``/``end_at`` and refuse what no export could accept.

    :raises PostHogInputError: for an empty, naive, unreadable, reversed or future bound.
    """
    start, end = parse_interval("start_at", start_at, "end_at", end_at, dates=True)
    current = now or datetime.now(UTC)
    # A date is compared by its UTC midnight: the export's timezone may move it by up to a day,
    # which format_bounds checks again with the export at hand.
    if _rough_instant(end) - timedelta(days=0 if isinstance(end, datetime) else 1) > current:
        _future(_text(end), current)
    return start, end


def parse_interval(
    start_param: str, start_value: Any, end_param: str, end_value: Any, *, dates: bool = False
) -> tuple[Bound, Bound]:
    """Read the two ends of an interval a DAG author gave (often templated from the DAG run's
    data interval) and refuse an empty, naive, unreadable or reversed one.

    :param dates: also accept dates (backfill bounds of daily and weekly exports).
    """
    for param, value in ((start_param, start_value), (end_param, end_value)):
        if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
            raise PostHogInputError(
                param,
                value,
                "is empty: this DAG run has no data interval (a manual run on Airflow 3?)",
                f"pass {start_param} and {end_param} explicitly",
            )
    parse = parse_instant_or_date if dates else parse_instant
    start, end = parse(start_param, start_value), parse(end_param, end_value)
    if type(start) is type(end) and start == end:
        raise PostHogInputError(
            start_param,
            _text(start),
            f"equals {end_param}: the DAG run's data interval is empty (on Airflow 3 a cron "
            "string schedule gives empty intervals)",
            "schedule the DAG with CronDataIntervalTimetable (e.g. "
            "CronDataIntervalTimetable('0 * * * *', timezone='UTC') for an hourly export), "
            "or pass the bounds explicitly",
        )
    if type(start) is type(end) and _rough_instant(start) > _rough_instant(end):
        _reversed(_text(start), _text(end), start_param, end_param)
    return start, end


def format_bounds(
    batch_export: Mapping[str, Any],
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
    start, end = parse_bounds(start_at, end_at, now=now)
    tz = export_timezone(batch_export)
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
        bounds = BackfillBounds(format_instant(start_dt), format_instant(end_dt), start_dt, end_dt)
    if bounds.start >= bounds.end:
        _reversed(bounds.start_at, bounds.end_at)
    current = now or datetime.now(UTC)
    if bounds.end > current:
        _future(bounds.end_at, current)
    if (bounds.end - bounds.start).total_seconds() < INTERVAL_SECONDS[interval]:
        log.warning(
            "The range %s - %s is shorter than one %r interval: PostHog will export nothing",
            bounds.start_at,
            bounds.end_at,
            interval,
        )
    return bounds


def intervals(
    batch_export: Mapping[str, Any], bounds: BackfillBounds
) -> list[tuple[datetime, datetime]]:
    """The export's whole intervals inside ``bounds``, oldest first, as PostHog cuts a
    backfill into runs (days and weeks start at ``offset_hour`` in the export's timezone)."""
    interval = str(batch_export.get("interval"))
    found: list[tuple[datetime, datetime]] = []
    if interval in DATE_ONLY_INTERVALS:
        tz = export_timezone(batch_export)
        step = timedelta(days=7 if interval == "week" else 1)
        day, last = date.fromisoformat(bounds.start_at), date.fromisoformat(bounds.end_at)
        while day + step <= last:
            found.append(
                (_day_start(day, batch_export, tz), _day_start(day + step, batch_export, tz))
            )
            day += step
        return found
    length = timedelta(seconds=INTERVAL_SECONDS[interval])
    start = bounds.start
    while start + length <= bounds.end:
        found.append((start, start + length))
        start += length
    return found


def export_timezone(batch_export: Mapping[str, Any]) -> tzinfo:
    name = batch_export.get("timezone") or "UTC"
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def interval_adjective(interval: Any) -> str:
    """How the task log names an export's interval: ``hourly``, ``every 5 minutes``."""
    names = {"hour": "hourly", "day": "daily", "week": "weekly"}
    return names.get(str(interval), str(interval))


def _reversed(
    start: str, end: str, start_param: str = "start_at", end_param: str = "end_at"
) -> None:
    raise PostHogInputError(
        start_param,
        start,
        f"must be before {end_param} ({end})",
        f"pass a {start_param} earlier than {end_param}",
    )


def _future(end_at: str, current: datetime) -> None:
    raise PostHogInputError(
        "end_at",
        end_at,
        f"is in the future (now is {format_instant(current)})",
        "PostHog only backfills data up to now; pass an end_at in the past",
    )


def _text(value: Bound) -> str:
    return format_instant(value) if isinstance(value, datetime) else value.isoformat()


def _rough_instant(value: Bound) -> datetime:
    return _as_instant(value, UTC)


def _as_instant(value: Bound, tz: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=tz).astimezone(UTC)


def _as_day(param: str, value: Bound, batch_export: Mapping[str, Any], tz: tzinfo) -> date:
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


def _day_start(day: date, batch_export: Mapping[str, Any], tz: tzinfo) -> datetime:
    offset_hour = int(batch_export.get("offset_hour") or 0)
    return datetime.combine(day, time(offset_hour), tzinfo=tz).astimezone(UTC)
