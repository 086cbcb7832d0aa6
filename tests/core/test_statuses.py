"""Run and backfill statuses: what is final, and the progress lines."""

from __future__ import annotations

import pytest

from airflow_provider_posthog_bx.core import statuses


def test_in_flight_and_final_sets_are_disjoint_and_cover_posthogs_ten_statuses():
    assert {"Starting", "Running"} == statuses.IN_FLIGHT
    assert statuses.FINAL.isdisjoint(statuses.IN_FLIGHT)
    posthog = {
        "Starting",
        "Running",
        "Completed",
        "Failed",
        "FailedRetryable",
        "FailedBilling",
        "Cancelled",
        "Terminated",
        "TimedOut",
        "ContinuedAsNew",
    }
    assert posthog == statuses.KNOWN
    assert statuses.COMPLETED not in statuses.FAILED


@pytest.mark.parametrize("status", ["Completed", "Failed", "Cancelled", "FailedBilling"])
def test_known_final_statuses_are_final(status):
    assert statuses.is_final(status)


@pytest.mark.parametrize("status", ["Running", "Starting", "", "Paused", "SomethingNew"])
def test_in_flight_missing_and_unknown_statuses_are_not_final(status):
    # PostHog adds statuses: an unknown one must not end a wait as if it were final.
    assert not statuses.is_final(status)


def test_status_of_reads_missing_and_odd_values_as_empty():
    assert statuses.status_of({"status": "Running"}) == "Running"
    assert statuses.status_of({}) == "" and statuses.status_of(None) == ""
    assert statuses.status_of({"status": 3}) == ""


def test_describe_backfill():
    running = {
        "status": "Running",
        "progress": {"total_runs": 10, "finished_runs": 3, "progress": 0.3},
    }
    assert statuses.describe_backfill(running) == "Running, 3/10 runs finished (30%)"
    assert statuses.describe_backfill({"status": "Starting", "progress": None}) == "Starting"
    # PostHog rounds `progress` to one decimal; the run counts give the exact share.
    third = {
        "status": "Running",
        "progress": {"total_runs": 3, "finished_runs": 1, "progress": 0.3},
    }
    assert statuses.describe_backfill(third) == "Running, 1/3 runs finished (33%)"
    counts_only = {"status": "Running", "progress": {"total_runs": 2, "finished_runs": 1}}
    assert statuses.describe_backfill(counts_only) == "Running, 1/2 runs finished (50%)"


def test_describe_run():
    assert statuses.describe_run(None) == "no run yet"
    run = {"id": "r1", "status": "Completed", "records_completed": 12}
    assert statuses.describe_run(run) == "Completed (run r1, 12 records)"


def test_an_unknown_status_is_noticed_once_per_wait():
    notices = statuses.WaitNotes()
    first = notices.notice("Paused")
    assert first is not None and "'Paused'" in first and "still in flight" in first
    assert notices.notice("Paused") is None
    assert notices.notice("Running") is None and notices.notice("Completed") is None
    assert statuses.WaitNotes().notice("Paused") is not None  # a new wait notices again


def test_a_wait_logs_its_status_line_only_when_it_changes():
    notes = statuses.WaitNotes()
    assert notes.changed("Starting") == "Starting"
    assert notes.changed("Starting") is None
    assert notes.changed("Running, 0/2 runs finished (0%)") == "Running, 0/2 runs finished (0%)"
    assert notes.changed("Running, 0/2 runs finished (0%)") is None
    assert notes.changed("Running, 1/2 runs finished (50%)") is not None
    assert notes.last_line == "Running, 1/2 runs finished (50%)"
    assert statuses.WaitNotes().changed("Starting") == "Starting"  # a new wait logs again


def test_summary_keeps_only_what_the_task_reads():
    full = {
        "id": "b",
        "status": "Completed",
        "progress": {"total_runs": 2},
        "start_at": "s",
        "end_at": "e",
        "created_at": "c",
        "finished_at": "f",
        "team": 1,
        "batch_export": "x",
        "total_records_count": 5,
    }
    assert statuses.summary(full) == {k: full[k] for k in statuses.SUMMARY_FIELDS}
    assert statuses.summary({"id": "b"}) == {"id": "b"}
