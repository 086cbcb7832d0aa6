"""Backfill bounds: the gate before any backfill is created."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from airflow_provider_posthog_bx.core.bounds import format_bounds, interval_adjective, parse_bounds
from airflow_provider_posthog_bx.exceptions import PostHogInputError

UTC = timezone.utc
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOURLY = {"interval": "hour", "timezone": "UTC"}
DAILY_BERLIN = {"interval": "day", "timezone": "Europe/Berlin", "offset_hour": 2}
WEEKLY_MONDAY = {"interval": "week", "timezone": "UTC", "offset_day": 1}


def bounds(export, start, end):
    return format_bounds(export, start, end, now=NOW)


def test_hourly_bounds_are_utc_instants_with_z():
    got = bounds(HOURLY, "2026-11-30T01:00:00+01:00", datetime(2026, 11, 30, 3, tzinfo=UTC))
    assert (got.start_at, got.end_at) == ("2026-11-30T00:00:00Z", "2026-11-30T03:00:00Z")
    assert got.start == datetime(2026, 11, 30, tzinfo=UTC)
    # A date on an hourly export is midnight in the export's timezone.
    assert bounds(HOURLY, date(2026, 11, 29), date(2026, 11, 30)).start_at == "2026-11-29T00:00:00Z"


def test_daily_bounds_are_days_in_the_exports_timezone_at_its_offset_hour():
    got = bounds(DAILY_BERLIN, "2026-11-28", datetime(2026, 11, 30, 1, tzinfo=UTC))
    assert (got.start_at, got.end_at) == ("2026-11-28", "2026-11-30")
    # 2026-11-28 02:00 in Berlin (UTC+1 in November) is 01:00 UTC.
    assert got.start == datetime(2026, 11, 28, 1, tzinfo=UTC)
    assert got.end == datetime(2026, 11, 30, 1, tzinfo=UTC)


def test_weekly_bounds_must_fall_on_the_offset_day():
    got = bounds(WEEKLY_MONDAY, "2026-11-16", "2026-11-30")
    assert (got.start_at, got.end_at) == ("2026-11-16", "2026-11-30")
    with pytest.raises(PostHogInputError) as info:
        bounds(WEEKLY_MONDAY, "2026-11-18", "2026-11-30")
    message = str(info.value)
    assert message.startswith("start_at is a Wednesday but this batch export runs weekly on Monday")
    assert "pass a Monday such as 2026-11-16" in message


@pytest.mark.parametrize(
    ("start", "end", "starts_with"),
    [
        ("2026-11-30T00:00:00", "2026-11-30T03:00:00Z", "start_at must be timezone-aware"),
        ("yesterday-ish", "2026-11-30T03:00:00Z", "start_at is not a valid ISO datetime"),
        ("2026-11-30T03:00:00Z", "2026-11-30T00:00:00Z", "start_at must be before end_at"),
        ("2026-11-30T03:00:00Z", "2026-11-30T03:00:00Z", "start_at equals end_at: the DAG run's"),
        ("2026-11-30T00:00:00Z", "2026-12-01T13:00:00Z", "end_at is in the future"),
        ("2026-11-30", "2026-11-29", "start_at must be before end_at"),
        ("2026-11-30", "2026-12-05", "end_at is in the future"),
        (None, "2026-11-30T03:00:00Z", "start_at is empty: this DAG run has no data interval"),
        ("None", "2026-11-30T03:00:00Z", "start_at is empty: this DAG run has no data interval"),
        (42, "2026-11-30T03:00:00Z", "start_at must be a datetime, a date or an ISO string"),
    ],
)
def test_parse_bounds_refuses_what_no_export_accepts_before_any_request(start, end, starts_with):
    # parse_bounds needs no export: the operator calls it before it GETs the export.
    with pytest.raises(PostHogInputError) as info:
        parse_bounds(start, end, now=NOW)
    assert str(info.value).startswith(starts_with)
    assert "(got " in str(info.value)


def test_parse_bounds_leaves_day_level_checks_to_the_export():
    # Today's date may already be past in the export's timezone: only the export can tell.
    start, end = parse_bounds("2026-11-30", "2026-12-01", now=NOW)
    assert (start, end) == (date(2026, 11, 30), date(2026, 12, 1))
    assert bounds(DAILY_BERLIN, start, end).end_at == "2026-12-01"


def test_unknown_interval_is_refused_with_the_known_ones():
    with pytest.raises(PostHogInputError, match="expected one of hour, day, week"):
        bounds({"interval": "fortnight"}, "2026-11-01", "2026-11-15")


def test_a_range_shorter_than_one_interval_only_warns(caplog):
    got = bounds(HOURLY, "2026-11-30T00:00:00Z", "2026-11-30T00:30:00Z")
    assert got.end_at == "2026-11-30T00:30:00Z"
    assert "shorter than one 'hour' interval" in caplog.text


def test_interval_adjective():
    assert [interval_adjective(i) for i in ("hour", "day", "week", "every 5 minutes")] == [
        "hourly",
        "daily",
        "weekly",
        "every 5 minutes",
    ]


def test_future_is_relative_to_now():
    later = NOW + timedelta(days=1)
    assert format_bounds(HOURLY, NOW, later, now=later + timedelta(hours=1)).end == later


def test_intervals_cut_a_range_into_the_exports_whole_intervals():
    from airflow_provider_posthog_bx.core.bounds import intervals

    hourly = bounds(HOURLY, "2026-11-30T00:00:00Z", "2026-11-30T02:30:00Z")
    assert intervals(HOURLY, hourly) == [
        (datetime(2026, 11, 30, h, tzinfo=UTC), datetime(2026, 11, 30, h + 1, tzinfo=UTC))
        for h in (0, 1)
    ]
    # Daily intervals start at offset_hour in the export's timezone, across a DST change too.
    berlin = {"interval": "day", "timezone": "Europe/Berlin", "offset_hour": 0}
    daily = format_bounds(berlin, "2026-03-28", "2026-03-31", now=NOW)
    got = intervals(berlin, daily)
    assert [end - start for start, end in got] == [
        timedelta(hours=24),
        timedelta(hours=23),
        timedelta(hours=24),
    ]
    assert got[0][0] == datetime(2026, 3, 27, 23, tzinfo=UTC)
    weekly = bounds(WEEKLY_MONDAY, "2026-11-16", "2026-11-30")
    assert [start.date().isoformat() for start, _ in intervals(WEEKLY_MONDAY, weekly)] == [
        "2026-11-16",
        "2026-11-23",
    ]


def test_an_empty_templated_interval_gets_the_timetable_hint():
    # What an Airflow 3 cron-string schedule renders for "{{ data_interval_start }}" and
    # "{{ data_interval_end }}": the same instant twice. The run sensor says the same.
    with pytest.raises(PostHogInputError) as info:
        parse_bounds("2026-11-30T00:00:00+00:00", "2026-11-30T00:00:00+00:00", now=NOW)
    assert "CronDataIntervalTimetable" in str(info.value)
