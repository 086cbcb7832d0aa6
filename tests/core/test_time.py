"""Instants: one parser, one formatter, one rule for naive values."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from airflow_provider_posthog_bx.core import time as ptime
from airflow_provider_posthog_bx.exceptions import PostHogInputError

UTC = timezone.utc


def test_parse_iso_takes_z_and_any_fraction_on_every_python():
    assert ptime.parse_iso("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)
    assert ptime.parse_iso("2026-01-01T00:00:00.5Z") == datetime(
        2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC
    )
    assert ptime.parse_iso("2026-01-01T00:00:00.1234567+00:00").microsecond == 123456
    assert ptime.parse_iso("2026-01-01T00:00:00").tzinfo is None


def test_posthogs_answers_are_read_as_utc_even_when_naive():
    assert ptime.from_posthog("2026-11-02T09:00:00.5Z") == datetime(
        2026, 11, 2, 9, 0, 0, 500000, tzinfo=UTC
    )
    assert ptime.from_posthog("2026-11-02T10:00:00+01:00") == datetime(2026, 11, 2, 9, tzinfo=UTC)
    assert ptime.from_posthog("2026-11-02T09:00:00") == datetime(2026, 11, 2, 9, tzinfo=UTC)
    for unreadable in ("not a date", "", None, 5):
        assert ptime.from_posthog(unreadable) is None


def test_a_dag_authors_naive_value_is_an_error_naming_the_parameter():
    for naive in ("2026-01-01T00:00:00", datetime(2026, 1, 1)):
        with pytest.raises(PostHogInputError, match=r"^start_at must be timezone-aware") as info:
            ptime.parse_instant("start_at", naive)
        assert "2026-01-01T00:00:00" in str(info.value) and "offset" in str(info.value)


def test_parse_instant_converts_to_utc_and_refuses_dates_unless_asked():
    five_west = timezone(timedelta(hours=-5))
    assert ptime.parse_instant("after", datetime(2026, 1, 1, 5, tzinfo=five_west)) == datetime(
        2026, 1, 1, 10, tzinfo=UTC
    )
    with pytest.raises(PostHogInputError, match="must be a datetime, not a date"):
        ptime.parse_instant("after", date(2026, 1, 1))
    assert ptime.parse_instant_or_date("start_at", "2026-01-01") == date(2026, 1, 1)
    assert ptime.parse_instant_or_date("start_at", date(2026, 1, 1)) == date(2026, 1, 1)
    for bad in ("yesterday", "", 42, None):
        with pytest.raises(PostHogInputError, match=r"^end_at "):
            ptime.parse_instant_or_date("end_at", bad)


def test_format_instant_is_utc_with_z_and_microseconds_only_when_set():
    assert ptime.format_instant(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"
    plus_one = timezone(timedelta(hours=1))
    assert (
        ptime.format_instant(datetime(2026, 1, 1, 1, 0, 0, 123456, tzinfo=plus_one))
        == "2026-01-01T00:00:00.123456Z"
    )
    # What it writes, the parser reads back to the same instant.
    when = datetime(2026, 11, 29, 10, 0, 1, 1, tzinfo=UTC)
    assert ptime.from_posthog(ptime.format_instant(when)) == when
