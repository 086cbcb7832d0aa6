"""Lifecycle of the emulator object, zero-second runs, HEAD, and the broken run-logs route."""

from __future__ import annotations

import pytest

from airflow_provider_posthog_bx.testing import PostHogEmulator

from .conftest import Api, error

pytestmark = pytest.mark.emulator


def test_start_stop_idempotent_without_with():
    emu = PostHogEmulator()
    with pytest.raises(RuntimeError):
        _ = emu.url
    emu.start()
    url = emu.url
    emu.start()
    assert emu.url == url and not url.endswith("/")
    assert Api(emu).get("").status == 200
    emu.stop()
    emu.stop()


def test_zero_second_lifecycle_completes_on_read():
    with PostHogEmulator(
        backfill_create_delay=0, backfill_starting_seconds=0, run_seconds=0
    ) as emu:
        api, export = Api(emu), emu.create_batch_export()
        body = {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-02T00:00:00Z"}
        bid = api.post(f"{export['id']}/backfills", body).json["backfill_id"]
        b = api.get(f"{export['id']}/backfills/{bid}").json
        assert b["status"] == "Completed" and b["total_records_count"] == 2400
        assert len(emu.runs(export["id"])) == 24


def test_clock_advance_and_now(emu):
    before = emu.now()
    emu.advance(3600)
    assert (emu.now() - before).total_seconds() >= 3600
    assert emu.now().tzinfo is not None
    with pytest.raises(ValueError):
        emu.advance(-1)


def test_head_and_run_logs_route(api, emu, export):
    assert api.call("HEAD", export["id"]).status == 200
    run = emu.add_run(export["id"], "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z")
    assert error(api.get(f"{export['id']}/runs/{run['id']}/logs"))[0] == 500


def test_python_api_validation(emu, export):
    with pytest.raises(ValueError):
        emu.create_batch_export(interval="month")
    with pytest.raises(ValueError):
        emu.add_run(export["id"], "2026-01-01T00:00:00", "2026-01-01T01:00:00Z")  # naive
    with pytest.raises(ValueError):
        emu.script_next_backfill(export["id"], status="Running")
    with pytest.raises(ValueError):
        emu.legacy_backfill_route = "500"
    with pytest.raises(KeyError):
        emu.get_backfill("nope")
