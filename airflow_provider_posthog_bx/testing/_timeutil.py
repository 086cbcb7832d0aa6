"""Datetime helpers: DRF rendering, ISO/relative parsing, interval stepping."""

from __future__ import annotations

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

_RELATIVE = re.compile(r"^-?(\d+)([hdwmyMs])$")


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


def parse_query_date(value: str, now: datetime) -> datetime | None:
    """Parse a filter value: relative (``-7d``, ``-1h``, ``-2w``, ``-1m``, ``-30M``) or ISO.

    Naive ISO values and bare dates are read in UTC (the project timezone of the emulator).
    """
    match = _RELATIVE.match(value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        if unit == "m":
            return _add_months(now, -amount)
        if unit == "y":
            return _add_months(now, -12 * amount)
        seconds = {"s": 1, "M": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
        return now - timedelta(seconds=amount * seconds)
    parsed = parse_iso(value)
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _add_months(value: datetime, months: int) -> datetime:
    total = value.year * 12 + value.month - 1 + months
    year, month = divmod(total, 12)
    day = min(value.day, 28)
    return value.replace(year=year, month=month + 1, day=day)


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


def local_midnight(day: date, hour: int, timezone: str) -> datetime:
    """``day`` at ``hour`` o'clock in ``timezone`` (aware, in that timezone)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(timezone))
