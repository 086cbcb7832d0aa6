"""Datetime helpers: DRF rendering, ISO/relative parsing, interval stepping."""

from __future__ import annotations

import calendar
import re
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

UTC = timezone.utc

INTERVALS: dict[str, timedelta] = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "every 5 minutes": timedelta(minutes=5),
    "every 15 minutes": timedelta(minutes=15),
}


class Clock:
    """Emulator clock: real (monotonic-driven) time plus an offset moved by ``advance``."""

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()
        self._offset = 0.0

    def now(self) -> datetime:
        """Current emulator time as an aware UTC datetime."""
        elapsed = time.monotonic() - self._mono0
        return datetime.fromtimestamp(self._wall0 + elapsed + self._offset, UTC)

    def seconds(self) -> float:
        """Current emulator time as epoch seconds (for throttling windows)."""
        return self._wall0 + (time.monotonic() - self._mono0) + self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        if seconds < 0:
            raise ValueError(f"advance() takes a non-negative number of seconds (got {seconds})")
        self._offset += seconds


def fmt(value: datetime | None) -> str | None:
    """Render like DRF: UTC, trailing ``Z``, microseconds only when non-zero."""
    if value is None:
        return None
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


_FRACTION = re.compile(r"(T\d\d:\d\d:\d\d)\.(\d+)")


def parse_iso(value: str) -> datetime | None:
    """Parse an ISO-8601 datetime (``Z`` accepted on every Python); ``None`` when unparseable."""
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    # Python 3.10 takes exactly 3 or 6 fractional digits.
    text = _FRACTION.sub(lambda m: f"{m.group(1)}.{m.group(2)[:6].ljust(6, '0')}", text, 1)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def coerce(value: datetime | str, what: str = "datetime") -> datetime:
    """Turn a Python-API argument into an aware UTC datetime.

    :param value: aware datetime or ISO string with offset.
    :param what: argument name used in the error message.
    """
    parsed = value if isinstance(value, datetime) else parse_iso(str(value))
    if parsed is None:
        raise ValueError(f"{what} is not an ISO datetime (got {value!r})")
    if parsed.tzinfo is None:
        raise ValueError(
            f"{what} must be timezone-aware (got {value!r}); add an offset such as +00:00"
        )
    return parsed.astimezone(UTC)


# posthog/utils.py relative_date_parse_with_delta_mapping: searched (not matched) anywhere in the
# input, so "-7days" is -7d and "yesterday" (its "y") is "now"; upper-case kinds other than M
# match but shift nothing.
_RELATIVE = re.compile(r"\-?(?P<number>[0-9]+)?(?P<kind>[hdwmqysHDWMQY])(?P<position>Start|End)?")
_STRPTIME_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")


def relative_date_parse(value: str, now: datetime) -> datetime:
    """PostHog's ``relative_date_parse`` in the emulator's project timezone (UTC); never raises.

    ISO datetimes and dates (naive ones read in UTC), then the relative grammar ``-7d``,
    ``-1w``, ``-3m``, ``-1q`` (13 weeks), ``-2y``, ``-6h``, ``-30M`` (minutes), ``-10s``, with
    an optional ``Start``/``End`` (``-1dStart`` is yesterday 00:00, ``-0mEnd`` the last day of
    this month); anything else is ``now`` (source: posthog/utils.py, ``get_delta_mapping_for``).
    """
    parsed = _parse_absolute(value)
    if parsed is not None:
        return parsed
    match = _RELATIVE.search(value)
    if match is None:
        return now
    number = int(match.group("number")) if match.group("number") else 0
    kind, position = match.group("kind"), match.group("position")
    absolute: dict[str, int] = {}
    if kind in ("h", "d") and position:
        fields = ("minute", "second", "microsecond") if kind == "h" else _DAY_FIELDS
        ends = {"hour": 23, "minute": 59, "second": 59, "microsecond": 999999}
        absolute = {f: (ends[f] if position == "End" else 0) for f in fields}
    elif kind == "m" and position:
        absolute = {"day": 1 if position == "Start" else 31}
    elif kind == "y" and position:
        absolute = {"month": 1, "day": 1} if position == "Start" else {"day": 31}
    months = {"m": number, "y": 12 * number}.get(kind, 0)
    seconds = {"h": 3600, "d": 86400, "w": 604800, "q": 13 * 604800, "M": 60, "s": 1}
    return _minus_relativedelta(now, absolute, months, seconds.get(kind, 0) * number)


_DAY_FIELDS = ("hour", "minute", "second", "microsecond")


def _minus_relativedelta(
    value: datetime, absolute: dict[str, int], months: int, seconds: int
) -> datetime:
    """``value - relativedelta(months=..., seconds=..., **absolute)`` as dateutil computes it.

    Absolute fields replace, the month shift follows, the day is clamped to the resulting
    month's length, and the time delta is subtracted last.
    """
    total = value.year * 12 + absolute.get("month", value.month) - 1 - months
    year, month = divmod(total, 12)
    month += 1
    day = min(calendar.monthrange(year, month)[1], absolute.get("day", value.day))
    out = value.replace(year=year, month=month, day=day)
    for name in _DAY_FIELDS:
        if name in absolute:
            out = out.replace(**{name: absolute[name]})  # type: ignore[arg-type]
    return out - timedelta(seconds=seconds)


def _parse_absolute(value: str) -> datetime | None:
    """``dateutil.parser.isoparse``, then ``%Y-%m-%d`` without zero padding; naive -> UTC."""
    parsed = parse_iso(value) if value.strip() else None
    if parsed is None:
        found = _STRPTIME_DATE.match(value)
        if found is None:
            return None
        try:
            year, month, day = (int(part) for part in found.groups())
            parsed = datetime(year, month, day)
        except ValueError:
            return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def step(value: datetime, interval: str, timezone: str) -> datetime:
    """Next interval boundary after ``value``; day/week follow wall time in ``timezone`` (DST)."""
    delta = INTERVALS[interval]
    if interval in ("day", "week"):
        local = value.astimezone(ZoneInfo(timezone))
        naive = local.replace(tzinfo=None) + delta
        return naive.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)
    return value + delta


def whole_intervals(
    start: datetime, end: datetime, interval: str, timezone: str
) -> list[tuple[datetime, datetime]]:
    """Whole intervals in ``[start, end)``; a trailing partial interval is skipped."""
    out: list[tuple[datetime, datetime]] = []
    cursor = start
    while True:
        nxt = step(cursor, interval, timezone)
        if nxt > end:
            return out
        out.append((cursor, nxt))
        cursor = nxt


def align(
    value: datetime, interval: str, timezone: str, offset_day: int, offset_hour: int
) -> datetime:
    """The start of the interval holding ``value`` (service.py ``align_timestamp_to_interval``)."""
    if interval not in ("day", "week"):
        seconds = INTERVALS[interval].total_seconds()
        return datetime.fromtimestamp(value.timestamp() // seconds * seconds, UTC)
    zone = ZoneInfo(timezone)
    local = value.astimezone(zone)
    if interval == "day":
        start = local.replace(hour=offset_hour, minute=0, second=0, microsecond=0)
        if start > local:
            start -= timedelta(days=1)
        return start.astimezone(UTC)
    since = ((local.weekday() + 1) % 7 - offset_day) % 7  # PostHog weeks: Sunday = 0
    day = local.date() - timedelta(days=since)
    start = datetime(day.year, day.month, day.day, offset_hour, tzinfo=zone)
    if start > local:
        start -= timedelta(weeks=1)
    return start.astimezone(UTC)


def local_midnight(day: date, hour: int, timezone: str) -> datetime:
    """``day`` at ``hour`` o'clock in ``timezone`` (aware, in that timezone)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(timezone))
