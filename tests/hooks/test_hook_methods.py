"""Every PostHogHook API method against the emulator, over real HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_provider_posthog_bx.exceptions import (
    PostHogConfigError,
    PostHogInputError,
    PostHogNotFoundError,
    PostHogTransportError,
    PostHogValidationError,
)

from .conftest import hours_ago, iso

EXPORTS = r"^/api/projects/1/batch_exports/$"


def path_of(export_id: str, *parts: str) -> str:
    return "/".join([f"/api/projects/1/batch_exports/{export_id}", *parts]) + "/"


# ---------------------------------------------------------------------------------------------
# Batch exports


def test_list_batch_exports_follows_pages(emu, hook):
    created = {emu.create_batch_export(name=f"export {i}")["id"] for i in range(130)}
    found = hook.list_batch_exports()
    assert len(found) == 130
    assert {export["id"] for export in found} == created
    gets = [r for r in emu.requests if r.method == "GET"]
    assert len(gets) == 2
    assert gets[0].query == {"limit": ["100"], "offset": ["0"]}
    assert gets[1].query == {"limit": ["100"], "offset": ["100"]}
    assert {r.path for r in gets} == {"/api/projects/1/batch_exports/"}


def test_list_batch_exports_single_page(emu, hook):
    emu.create_batch_export(name="only")
    assert [e["name"] for e in hook.list_batch_exports()] == ["only"]
    assert emu.count("GET", EXPORTS) == 1


def test_get_batch_export(emu, hook, export):
    got = hook.get_batch_export(export["id"])
    assert got["id"] == export["id"]
    assert got["name"] == "hourly" and got["interval"] == "hour" and got["paused"] is False
    assert [(r.method, r.path) for r in emu.requests] == [("GET", path_of(export["id"]))]


def test_create_batch_export(emu, hook):
    body = {
        "name": "to S3",
        "interval": "day",
        # What PostHog creates today: AwsS3 on an aws-s3 Integration, no inline keys.
        "destination": {
            "type": "AwsS3",
            "integration_id": emu.integration_id("AwsS3"),
            "config": {"bucket_name": "b", "region": "eu-west-1", "prefix": "p/"},
        },
    }
    created = hook.create_batch_export(body)
    assert created["name"] == "to S3" and created["interval"] == "day"
    assert emu.get_batch_export(created["id"])["name"] == "to S3"
    (post,) = emu.requests
    assert (post.method, post.path, post.status) == ("POST", "/api/projects/1/batch_exports/", 201)
    assert post.body == body


def test_create_batch_export_validation_error(emu, hook):
    with pytest.raises(PostHogValidationError) as info:
        hook.create_batch_export({"name": "x", "interval": "hour"})
    error = info.value
    assert (error.status, error.code, error.attr) == (400, "required", "destination")
    assert error.detail == "This field is required."
    assert str(error) == (
        "PostHog API POST /api/projects/1/batch_exports/ returned 400 "
        "(required, attr=destination): This field is required."
    )
    assert emu.count("POST", EXPORTS) == 1


def test_update_batch_export_patches(emu, hook, export):
    updated = hook.update_batch_export(export["id"], {"name": "renamed"})
    assert updated["name"] == "renamed"
    assert emu.get_batch_export(export["id"])["name"] == "renamed"
    (patch,) = emu.requests
    assert (patch.method, patch.path, patch.body) == (
        "PATCH",
        path_of(export["id"]),
        {"name": "renamed"},
    )


def test_delete_batch_export_then_404(emu, hook, export):
    assert hook.delete_batch_export(export["id"]) is None
    assert emu.count("DELETE", path_of(export["id"])) == 1
    assert emu.requests[-1].status == 204
    with pytest.raises(PostHogNotFoundError) as info:
        hook.get_batch_export(export["id"])
    assert info.value.status == 404 and info.value.detail == "Not found."
    assert info.value.path == path_of(export["id"])


def test_pause_and_unpause(emu, hook, export):
    assert hook.pause_batch_export(export["id"]) == {"paused": True}
    assert emu.get_batch_export(export["id"])["paused"] is True
    assert hook.pause_batch_export(export["id"]) == {"paused": True}  # idempotent
    assert hook.unpause_batch_export(export["id"]) == {"paused": False}
    assert emu.get_batch_export(export["id"])["paused"] is False
    assert [(r.method, r.path, r.body) for r in emu.requests] == [
        ("POST", path_of(export["id"], "pause"), None),
        ("POST", path_of(export["id"], "pause"), None),
        ("POST", path_of(export["id"], "unpause"), None),
    ]
    assert emu.backfills(export["id"]) == []  # a plain unpause starts no backfill


def test_unpause_with_backfill_starts_one(emu, hook, export):
    hook.pause_batch_export(export["id"])
    paused_at = emu.get_batch_export(export["id"])["last_paused_at"]
    emu.advance(3 * 3600)
    assert hook.unpause_batch_export(export["id"], backfill=True) == {"paused": False}
    assert emu.requests[-1].body == {"backfill": True}
    (backfill,) = emu.backfills(export["id"])
    assert backfill["start_at"] == paused_at
    assert backfill["end_at"] == emu.get_batch_export(export["id"])["last_updated_at"]


# ---------------------------------------------------------------------------------------------
# Backfills


def test_create_backfill_sends_bounds_as_given_and_returns_id(emu, hook, export):
    start, end = iso(hours_ago(emu, 3)), hours_ago(emu, 1).strftime("%Y-%m-%dT%H:%M:%SZ")
    backfill_id = hook.create_backfill(export["id"], start, end)
    (post,) = emu.requests
    assert (post.method, post.path, post.status) == (
        "POST",
        path_of(export["id"], "backfills"),
        201,
    )
    assert post.body == {"start_at": start, "end_at": end}
    (backfill,) = emu.backfills(export["id"])
    assert backfill["id"] == backfill_id
    assert backfill["start_at"] == start.replace("+00:00", "Z") and backfill["end_at"] == end


@pytest.mark.parametrize(
    ("start", "end", "detail"),
    [
        ("-3h", "+1h", "The provided 'end_at' ({end}) is in the future"),
        ("2026-01-01T00:00:00", "-1h", "Input 2026-01-01T00:00:00 is naive."),
        ("-1h", "-3h", "The initial backfill datetime 'start_at' must be before 'end_at'"),
        ("-3h", "-3h", "The initial backfill datetime 'start_at' must be before 'end_at'"),
        ("yesterday", "-1h", "Input yesterday is not a valid ISO formatted datetime."),
    ],
)
def test_create_backfill_validation_surfaces_posthog_detail(emu, hook, export, start, end, detail):
    def bound(text: str) -> str:
        if text[0] in "+-" and text.endswith("h"):
            return iso(hours_ago(emu, 0) + timedelta(hours=int(text[:-1])))
        return text

    start_at, end_at = bound(start), bound(end)
    with pytest.raises(PostHogValidationError) as info:
        hook.create_backfill(export["id"], start_at, end_at)
    error = info.value
    expected = detail.format(end=end_at)
    path = f"/api/projects/1/batch_exports/{export['id']}/backfills/"
    assert (error.status, error.code, error.type, error.attr) == (
        400,
        "invalid_input",
        "validation_error",
        None,
    )
    assert (error.method, error.path, error.detail) == ("POST", path, expected)
    assert str(error) == f"PostHog API POST {path} returned 400 (invalid_input): {expected}"
    assert emu.count("POST", "/backfills/$") == 1
    assert emu.count("POST", "/backfill/$") == 0
    assert emu.backfills(export["id"]) == []


def test_create_backfill_daily_export_wants_dates(emu, hook):
    daily = emu.create_batch_export(name="daily", interval="day")
    day = (emu.now() - timedelta(days=3)).date().isoformat()
    with pytest.raises(PostHogValidationError, match="expect only the date component"):
        hook.create_backfill(daily["id"], f"{day}T00:00:00Z", f"{day}T12:00:00Z")
    end = (emu.now() - timedelta(days=1)).date().isoformat()
    backfill_id = hook.create_backfill(daily["id"], day, end)
    assert emu.get_backfill(backfill_id)["batch_export"] == daily["id"]


def test_get_backfill_is_404_during_the_create_delay(emu, hook, export):
    backfill_id = hook.create_backfill(export["id"], iso(hours_ago(emu, 3)), iso(hours_ago(emu, 1)))
    with pytest.raises(PostHogNotFoundError) as info:
        hook.get_backfill(export["id"], backfill_id)
    assert info.value.path == path_of(export["id"], "backfills", backfill_id)
    emu.advance(5)  # the create delay
    backfill = hook.get_backfill(export["id"], backfill_id)
    assert backfill["id"] == backfill_id and backfill["status"] == "Starting"
    emu.advance(5 + 2 * 5)  # starting, then two hourly runs of 5 s
    done = hook.get_backfill(export["id"], backfill_id)
    assert done["status"] == "Completed"
    assert done["progress"] == {"total_runs": 2, "finished_runs": 2, "progress": 1.0}


def test_list_backfills_follows_cursor_pages(make_emulator, set_conn):
    from airflow_provider_posthog_bx.hooks.posthog import PostHogHook

    from .conftest import FAST_RETRY, SECRET_KEY

    emu = make_emulator(max_concurrent_backfills=100)
    set_conn(host=emu.url, password=SECRET_KEY, extra={"project_id": 1})
    hook = PostHogHook(retry_policy=FAST_RETRY)
    export = emu.create_batch_export()
    start, end = iso(hours_ago(emu, 3)), iso(hours_ago(emu, 1))
    created = [hook.create_backfill(export["id"], start, end) for _ in range(55)]
    assert hook.list_backfills(export["id"]) == []  # none exists yet in PostHog's table
    emu.advance(5)
    emu.clear_requests()

    found = hook.list_backfills(export["id"])
    assert sorted(b["id"] for b in found) == sorted(created)
    gets = [r for r in emu.requests if r.method == "GET"]
    assert len(gets) == 2
    assert gets[0].query == {} and list(gets[1].query) == ["cursor"]
    assert len({b["id"] for b in found}) == 55  # no repeats across pages

    emu.clear_requests()
    first_page = hook.list_backfills(export["id"], max_pages=1)
    assert len(first_page) == 50
    assert [b["id"] for b in first_page] == [b["id"] for b in found[:50]]
    assert emu.count("GET", "/backfills/$") == 1


def test_cancel_backfill(emu, hook, export):
    backfill_id = hook.create_backfill(export["id"], iso(hours_ago(emu, 3)), iso(hours_ago(emu, 1)))
    emu.advance(5)
    assert hook.cancel_backfill(export["id"], backfill_id) == {"cancelled": True}
    assert emu.get_backfill(backfill_id)["status"] == "Cancelled"
    assert emu.requests[-1].path == path_of(export["id"], "backfills", backfill_id, "cancel")
    with pytest.raises(PostHogValidationError) as info:
        hook.cancel_backfill(export["id"], backfill_id)
    assert info.value.detail == "Cannot cancel a backfill that is in 'Cancelled' status"


# ---------------------------------------------------------------------------------------------
# Runs


def add_hourly_runs(emu, export_id: str, count: int, **kwargs) -> list[dict]:
    return [
        emu.add_run(export_id, hours_ago(emu, i + 1), hours_ago(emu, i), **kwargs)
        for i in range(count)
    ]


def test_list_runs_follows_cursor_pages(emu, hook, export):
    runs = add_hourly_runs(emu, export["id"], 130)
    found = hook.list_runs(export["id"])
    assert sorted(r["id"] for r in found) == sorted(r["id"] for r in runs)
    assert len(found) == 130
    gets = [r for r in emu.requests if r.method == "GET"]
    assert len(gets) == 2
    assert gets[0].query == {} and list(gets[1].query) == ["cursor"]


def test_list_runs_filters(emu, hook, export):
    failed = emu.add_run(
        export["id"],
        hours_ago(emu, 3),
        hours_ago(emu, 2),
        status="Failed",
        latest_error="S3 said no",
    )
    cancelled = emu.add_run(export["id"], hours_ago(emu, 2), hours_ago(emu, 1), status="Cancelled")
    emu.add_run(export["id"], hours_ago(emu, 1), hours_ago(emu, 0), status="Completed")

    found = hook.list_runs(export["id"], status=["Failed", "Cancelled"])
    assert {r["id"] for r in found} == {failed["id"], cancelled["id"]}
    assert emu.requests[-1].query == {"status": ["Failed", "Cancelled"]}
    (only_failed,) = hook.list_runs(export["id"], status="Failed")
    assert only_failed["latest_error"] == "S3 said no"

    ordered = hook.list_runs(export["id"], ordering="data_interval_start")
    starts = [r["data_interval_start"] for r in ordered]
    assert len(starts) == 3 and starts == sorted(starts)
    assert emu.requests[-1].query == {"ordering": ["data_interval_start"]}

    with pytest.raises(PostHogValidationError) as info:
        hook.list_runs(export["id"], status="Exploded")
    # PostHog's ListField reports the index of the bad value
    assert (info.value.attr, info.value.code) == ("status__0", "invalid_choice")


def test_runs_older_than_seven_days_need_after(emu, hook, export):
    old_end = hours_ago(emu, 10 * 24)
    old = emu.add_run(export["id"], old_end - timedelta(hours=1), old_end, created_at=old_end)
    recent = emu.add_run(export["id"], hours_ago(emu, 2), hours_ago(emu, 1))

    assert [r["id"] for r in hook.list_runs(export["id"])] == [recent["id"]]
    both = hook.list_runs(export["id"], after="-30d")
    assert {r["id"] for r in both} == {old["id"], recent["id"]}
    assert emu.requests[-1].query == {"after": ["-30d"]}
    # A datetime is sent as ISO in UTC, with Z.
    since = old_end - timedelta(days=1)
    assert len(hook.list_runs(export["id"], after=since)) == 2
    assert emu.requests[-1].query == {"after": [since.isoformat().replace("+00:00", "Z")]}

    with pytest.raises(PostHogNotFoundError):
        hook.get_run(export["id"], old["id"])
    got = hook.get_run(export["id"], old["id"], after="-30d")
    assert got["id"] == old["id"] and got["status"] == "Completed"
    assert emu.requests[-1].query == {"after": ["-30d"]}
    assert hook.get_run(export["id"], recent["id"])["id"] == recent["id"]


def test_retry_run(emu, hook, export):
    run = emu.add_run(export["id"], hours_ago(emu, 2), hours_ago(emu, 1), status="Failed")
    workflow_id = hook.retry_run(export["id"], run["id"])
    assert workflow_id.startswith(f"{export['id']}-Backfill-")
    assert emu.count("POST", "/retry/$") == 1
    (backfill,) = emu.backfills(export["id"])
    assert backfill["start_at"] == run["data_interval_start"]
    assert backfill["end_at"] == run["data_interval_end"]


def test_retry_run_without_backfill_id_is_an_error(emu, hook, export):
    run = emu.add_run(export["id"], hours_ago(emu, 2), hours_ago(emu, 1), status="Failed")
    emu.add_fault("POST", "/retry/$", status=201, body={"ok": True})
    with pytest.raises(PostHogTransportError, match="the answer has no backfill_id"):
        hook.retry_run(export["id"], run["id"])


def test_cancel_run(emu, hook, export):
    running = emu.add_run(export["id"], hours_ago(emu, 1), hours_ago(emu, 0), status="Running")
    assert hook.cancel_run(export["id"], running["id"]) == {"cancelled": True}
    assert emu.requests[-1].path == path_of(export["id"], "runs", running["id"], "cancel")
    assert emu.runs(export["id"])[0]["status"] == "Cancelled"
    with pytest.raises(PostHogValidationError) as info:
        hook.cancel_run(export["id"], running["id"])
    assert info.value.detail == "Cannot cancel a run that is in 'Cancelled' status"


# ---------------------------------------------------------------------------------------------
# Logs


def test_get_logs_filters(emu, hook, export):
    base = hours_ago(emu, 5)
    emu.add_logs(
        export["id"],
        [
            (base + timedelta(minutes=1), "INFO", "Batch export for range A starting."),
            (base + timedelta(minutes=2), "WARNING", "Slow destination"),
            (base + timedelta(minutes=3), "ERROR", "Batch export for range A failed: timeout"),
            (base + timedelta(minutes=4), "INFO", "Batch export for range B starting."),
            (
                base + timedelta(minutes=5),
                "ERROR",
                "Batch export for range B failed: Access Denied",
            ),
        ],
    )
    every = hook.get_logs(export["id"])
    assert [e["message"] for e in every] == [
        "Batch export for range B failed: Access Denied",
        "Batch export for range B starting.",
        "Batch export for range A failed: timeout",
        "Slow destination",
        "Batch export for range A starting.",
    ]
    assert every[1]["level"] == "INFO" and every[3]["level"] == "WARNING"
    assert emu.requests[-1].query == {"limit": ["50"]}

    errors = hook.get_logs(export["id"], level="error")
    assert [e["level"] for e in errors] == ["ERROR", "ERROR"]
    # Levels are sent in PostHog's vocabulary: upper-cased, WARN meaning WARNING.
    assert emu.requests[-1].query == {"limit": ["50"], "level": ["ERROR"]}
    warnings = hook.get_logs(export["id"], level="WARN")
    assert [e["message"] for e in warnings] == ["Slow destination"]
    with pytest.raises(PostHogInputError, match=r"^level is not a PostHog log level"):
        hook.get_logs(export["id"], level="loud")

    found = hook.get_logs(export["id"], search="ACCESS denied")
    assert [e["message"] for e in found] == ["Batch export for range B failed: Access Denied"]

    # after/before are exclusive bounds.
    window = hook.get_logs(
        export["id"],
        after=iso(base + timedelta(minutes=2)),
        before=iso(base + timedelta(minutes=4)),
    )
    assert [e["message"] for e in window] == ["Batch export for range A failed: timeout"]
    assert emu.requests[-1].query == {
        "limit": ["50"],
        "after": [iso(base + timedelta(minutes=2))],
        "before": [iso(base + timedelta(minutes=4))],
    }

    newest_two = hook.get_logs(export["id"], limit=2)
    assert [e["level"] for e in newest_two] == ["ERROR", "INFO"]
    assert emu.requests[-1].query == {"limit": ["2"]}


def test_get_logs_more_than_a_page(emu, hook, export):
    base = hours_ago(emu, 10)
    emu.add_logs(
        export["id"], [(base + timedelta(seconds=i), "INFO", f"line {i:03d}") for i in range(350)]
    )
    emu.clear_requests()
    entries = hook.get_logs(export["id"], limit=500)
    assert len(entries) == 350
    assert entries[0]["message"] == "line 349" and entries[-1]["message"] == "line 000"
    # PostHog applies `limit` before paginating, and pages by the same `limit`: one request.
    assert emu.count("GET", "/logs/$") == 1
    capped = hook.get_logs(export["id"], limit=120)
    assert [e["message"] for e in capped] == [f"line {i:03d}" for i in range(349, 229, -1)]


def test_get_logs_limit_out_of_range_sends_nothing(emu, hook, export):
    with pytest.raises(PostHogConfigError, match=r"limit must be between 1 and 500 \(got 501\)"):
        hook.get_logs(export["id"], limit=501)
    assert emu.requests == []
