"""Instants: one parser, one formatter, one rule for naive values.

The rule: a naive value is an error when a DAG author gives it (which timezone was meant is
unknowable) and UTC when PostHog sends it (PostHog's own timestamps always carry ``Z``; only
very old self-hosted versions may omit it).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone
from typing import Any

from airflow_provider_posthog_bx.exceptions import PostHogInputError

UTC = timezone.utc

ACCEPTED = (
    "pass a timezone-aware datetime or an ISO string with an offset, such as "
    "'2026-01-01T00:00:00+00:00' or '2026-01-01T00:00:00Z'"
)
ACCEPTED_WITH_DATES = (
    "pass a timezone-aware datetime, a date, or an ISO string such as "
    "'2026-01-01T00:00:00+00:00' or '2026-01-01'"
)

_FRACTION = re.compile(r"(T\d\d:\d\d:\d\d)\.(\d+)")


def parse_iso(text: str) -> datetime:
    """``datetime.fromisoformat`` that also takes ``Z`` and any number of fractional digits on
    Python 3.10 (which only knows ``+00:00`` and exactly 3 or 6 digits). Raises ValueError."""
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    value = _FRACTION.sub(lambda m: f"{m.group(1)}.{m.group(2)[:6].ljust(6, '0')}", value, 1)
    return datetime.fromisoformat(value)


def from_posthog(value: Any) -> datetime | None:
    """An instant PostHog returned, as an aware UTC datetime; None if absent or unreadable.

    Naive values are read as UTC (see the module docstring).
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = parse_iso(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_instant(param: str, value: Any) -> datetime:
    """A DAG author's instant (an aware datetime or an ISO string with an offset), in UTC.

    :raises PostHogInputError: naming ``param``, the value and what is accepted.
    """
    parsed = _parse_input(param, value, dates=False)
    assert isinstance(parsed, datetime)
    return parsed


def parse_instant_or_date(param: str, value: Any) -> datetime | date:
    """Like :func:`parse_instant`, but a ``date`` (or ``YYYY-MM-DD``) stays a date: daily and
    weekly exports take days, which PostHog places in the export's own timezone."""
    return _parse_input(param, value, dates=True)


def _parse_input(param: str, value: Any, *, dates: bool) -> datetime | date:
    accepted = ACCEPTED_WITH_DATES if dates else ACCEPTED
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PostHogInputError(param, value.isoformat(), "must be timezone-aware", accepted)
        return value.astimezone(UTC)
    if isinstance(value, date):
        if dates:
            return value
        raise PostHogInputError(
            param, value.isoformat(), "must be a datetime, not a date", accepted
        )
    if not isinstance(value, str) or not value.strip():
        kinds = "a datetime, a date or an ISO string" if dates else "a datetime or an ISO string"
        raise PostHogInputError(param, value, f"must be {kinds}", accepted)
    text = value.strip()
    if dates and len(text) == 10:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise PostHogInputError(param, value, "is not a valid ISO date", accepted) from None
    try:
        parsed = parse_iso(text)
    except ValueError:
        raise PostHogInputError(param, value, "is not a valid ISO datetime", accepted) from None
    if parsed.tzinfo is None:
        raise PostHogInputError(param, value, "must be timezone-aware", accepted)
    return parsed.astimezone(UTC)


def format_instant(value: datetime) -> str:
    """The one way this provider writes an instant: UTC with ``Z``, microseconds only when not
    zero (``2026-01-01T00:00:00Z``, ``2026-11-29T10:00:01.123456Z``)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def filter_bound(param: str, value: Any, *, relative: bool = False) -> str | None:
    """A run or log filter bound as PostHog's query string takes it; None when not given.

    An aware datetime is written with :func:`format_instant`, a date as its 00:00 UTC, an ISO
    string is checked (naive or unreadable ones are refused) and sent as given. With
    ``relative``, a string that does not start with a digit (``-7d``, ``-1h``) is PostHog's
    relative form and is sent as given, for PostHog to read against its own clock.

    :raises PostHogInputError: naming ``param``, the value and what is accepted.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = value.strip()
        if relative and not text[0].isdigit():
            return text
        parsed = parse_instant_or_date(param, text)
        if isinstance(parsed, datetime):
            return text
    else:
        parsed = parse_instant_or_date(param, value)
    if not isinstance(parsed, datetime):
        parsed = datetime.combine(parsed, time(0), tzinfo=UTC)
    return format_instant(parsed)
