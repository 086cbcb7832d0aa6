"""Export logs: envelope, ordering, filters and limit bounds."""

from __future__ import annotations

import pytest

from .conftest import error

pytestmark = pytest.mark.emulator


@pytest.fixture
def logged(emu, export):
    emu.add_logs(
        export["id"],
        [
            (f"2026-01-01T00:00:{i:02d}Z", level, f"message {i} {word}")
            for i, (level, word) in enumerate(
                [
                    ("INFO", "alpha"),
                    ("WARNING", "Beta"),
                    ("ERROR", "gamma"),
                    ("DEBUG", "beta"),
                    ("INFO", "delta"),
                ]
            )
        ],
    )
    emu.add_log(
        export["id"], "tagged", level="info", timestamp="2026-01-01T00:01:00Z", instance_id="run-1"
    )
    return export


def _logs(api, export, **query):
    resp = api.get(f"{export['id']}/logs", query=query)
    assert resp.status == 200, resp.raw
    return resp.json


def test_envelope_and_newest_first(api, logged):
    body = _logs(api, logged)
    assert set(body) == {"count", "next", "previous", "results"} and body["count"] == 6
    first = body["results"][0]
    assert first == {
        "log_source_id": logged["id"],
        "instance_id": "run-1",
        "timestamp": "2026-01-01T00:01:00Z",
        "level": "INFO",
        "message": "tagged",
    }
    stamps = [e["timestamp"] for e in body["results"]]
    assert stamps == sorted(stamps, reverse=True)


def test_filters(api, logged):
    assert [e["level"] for e in _logs(api, logged, level="warning,error")["results"]] == [
        "ERROR",
        "WARNING",
    ]
    assert [e["message"] for e in _logs(api, logged, search="BETA")["results"]] == [
        "message 3 beta",
        "message 1 Beta",
    ]
    assert [e["message"] for e in _logs(api, logged, instance_id="run-1")["results"]] == ["tagged"]
    window = _logs(api, logged, after="2026-01-01T00:00:01Z", before="2026-01-01T00:00:04Z")
    assert [e["message"] for e in window["results"]] == ["message 3 beta", "message 2 gamma"]
    limited = _logs(api, logged, limit=2)
    assert limited["count"] == 2 and [e["message"] for e in limited["results"]] == [
        "tagged",
        "message 4 delta",
    ]


@pytest.mark.parametrize(
    "limit,code,detail",
    [
        (0, "min_value", "Ensure this value is greater than or equal to 1."),
        (501, "max_value", "Ensure this value is less than or equal to 500."),
        ("x", "invalid_input", "A valid integer is required."),
    ],
)
def test_limit_bounds(api, logged, limit, code, detail):
    assert error(api.get(f"{logged['id']}/logs", query={"limit": limit})) == (
        400,
        "validation_error",
        code,
        detail,
        "limit",
    )


def test_limit_500_and_default_50(api, emu, export):
    emu.add_logs(
        export["id"],
        [(f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z", "INFO", f"m{i}") for i in range(600)],
    )
    assert len(_logs(api, export)["results"]) == 50
    big = _logs(api, export, limit=500)
    assert big["count"] == 500 and big["results"][0]["message"] == "m599" and big["next"] is None


def test_late_entry_with_older_timestamp_appears_after_a_newer_one(api, emu, export):
    newer = emu.add_log(export["id"], "run finished", timestamp="2026-01-01T00:00:10Z")
    late = emu.add_log(
        export["id"], "run started", timestamp="2026-01-01T00:00:05Z", visible_after=3
    )
    assert late["timestamp"] == "2026-01-01T00:00:05Z"
    assert [e["message"] for e in _logs(api, export)["results"]] == ["run finished"]
    after = {"after": "2026-01-01T00:00:00Z"}
    assert _logs(api, export, **after)["count"] == 1
    assert [e["message"] for e in emu.logs(export["id"])] == ["run finished", "run started"]
    emu.advance(2.9)
    assert _logs(api, export)["count"] == 1
    emu.advance(0.2)
    body = _logs(api, export)
    assert [(e["timestamp"], e["message"]) for e in body["results"]] == [
        (newer["timestamp"], "run finished"),
        ("2026-01-01T00:00:05Z", "run started"),  # behind what a cursor on timestamps has seen
    ]
    seen = {"after": newer["timestamp"]}
    assert _logs(api, export, **seen)["count"] == 0  # a client reading after T misses it


def test_add_logs_visible_after(api, emu, export):
    emu.add_logs(export["id"], [("2026-01-01T00:00:00Z", "INFO", "a")])
    emu.add_logs(
        export["id"],
        [("2026-01-01T00:00:01Z", "INFO", "b"), ("2026-01-01T00:00:02Z", "INFO", "c")],
        visible_after=1,
    )
    assert [e["message"] for e in _logs(api, export)["results"]] == ["a"]
    emu.advance(1.05)
    assert [e["message"] for e in _logs(api, export)["results"]] == ["c", "b", "a"]
    with pytest.raises(ValueError):
        emu.add_log(export["id"], "x", visible_after=-1)


def test_blank_limit_after_before_are_absent(api, logged):
    # DRF reads a QueryDict: a blank value of a field that is not required is "not sent"
    body = _logs(api, logged, limit="", after="", before="", level="", search="")
    assert body["count"] == 6
    assert error(api.get(f"{logged['id']}/logs", query={"after": "x"}))[4] == "after"


def test_level_is_the_last_value_split_on_commas_as_sent(api, logged):
    levels = lambda query: [e["level"] for e in _logs(api, logged, **query)["results"]]  # noqa: E731
    # `level` is a CharField: of repeated values only the last one counts
    assert levels({"level": ["ERROR", "debug"]}) == ["DEBUG"]
    assert levels({"level": ["ERROR", ""]}) == ["INFO", "INFO", "DEBUG", "ERROR", "WARNING", "INFO"]
    # split on "," without trimming: " error" never matches
    assert levels({"level": "warning, error"}) == ["WARNING"]
    assert levels({"level": "info,"}) == ["INFO", "INFO", "INFO"]


def test_search_is_ilike_with_wildcards(api, emu, export):
    emu.add_logs(
        export["id"],
        [
            ("2026-01-01T00:00:01Z", "INFO", "100% done"),
            ("2026-01-01T00:00:02Z", "INFO", "1000 rows"),
            ("2026-01-01T00:00:03Z", "INFO", "file_a.parquet"),
            ("2026-01-01T00:00:04Z", "INFO", "fileXa.parquet"),
            ("2026-01-01T00:00:05Z", "INFO", "Multi\nLine BETA"),
        ],
    )
    found = lambda s: [e["message"] for e in _logs(api, export, search=s)["results"]]  # noqa: E731
    assert found("100%") == ["1000 rows", "100% done"]  # % is a wildcard
    assert found(r"100\%") == ["100% done"]  # unless escaped
    assert found("file_a") == ["fileXa.parquet", "file_a.parquet"]  # _ is any one character
    assert found(r"file\_a") == ["file_a.parquet"]
    assert found("line%beta") == ["Multi\nLine BETA"]  # case-insensitive, across lines
    assert found(["nothing", "rows"]) == ["1000 rows"]  # the last value counts
