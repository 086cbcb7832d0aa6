"""PostHog emulator CLI: ``python -m airflow_provider_posthog_bx.testing --port 8123``.

Serves one seeded hourly batch export until SIGINT/SIGTERM; ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ._auth import POSTHOG_RATE_LIMIT
from ._emulator import PostHogEmulator

__all__ = ["main"]


def _rate_limit(text: str) -> tuple[int, int] | None:
    if text == "off":
        return None
    try:
        burst, sustained = (int(part.split("/")[0]) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected BURST/MIN,SUSTAINED/H such as 480/min,4800/h, or off (got {text!r})"
        ) from None
    return burst, sustained


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: serve an emulator with one seeded hourly batch export until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description="Local PostHog batch-exports API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--api-key", default="phx_emulator_key")
    parser.add_argument("--project-id", type=int, default=1)
    parser.add_argument("--backfill-create-delay", type=float, default=1.0, metavar="S")
    parser.add_argument("--backfill-starting-seconds", type=float, default=1.0, metavar="S")
    parser.add_argument("--run-seconds", type=float, default=1.0, metavar="S")
    parser.add_argument("--max-concurrent-backfills", type=int, default=5)
    parser.add_argument(
        "--legacy-deployment",
        choices=["workflow-ids", "no-backfills"],
        default=None,
        help="emulate an older PostHog (see PostHogEmulator)",
    )
    parser.add_argument(
        "--legacy-backfill-route",
        choices=["405", "404", "catch-all"],
        default=None,
        help="how POST .../backfills/ fails on a deployment without it",
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        default=POSTHOG_RATE_LIMIT,
        metavar="BURST/MIN,SUSTAINED/H|off",
        help="per-key throttling (default PostHog Cloud's 480/min,4800/h; off to disable)",
    )
    parser.add_argument(
        "--high-frequency",
        action="store_true",
        help="allow 'every 5/15 minutes' exports over HTTP (a PostHog feature flag)",
    )
    parser.add_argument(
        "--ready-file",
        default=None,
        metavar="PATH",
        help="write connection JSON here once listening",
    )
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emulator = PostHogEmulator(
        project_id=args.project_id,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        backfill_create_delay=args.backfill_create_delay,
        backfill_starting_seconds=args.backfill_starting_seconds,
        run_seconds=args.run_seconds,
        max_concurrent_backfills=args.max_concurrent_backfills,
        rate_limit=args.rate_limit,
        high_frequency_enabled=args.high_frequency,
        legacy_backfill_route=args.legacy_backfill_route,
        legacy_deployment=args.legacy_deployment,
    )
    with emulator:
        export = emulator.create_batch_export(name="Emulator S3 export", interval="hour")
        # A dev tool: printing the emulator's own throwaway key is intended.
        print(f"PostHog emulator listening on {emulator.url}", flush=True)
        print(f"api key: {emulator.api_key}", flush=True)
        print(f"project id: {emulator.project_id}", flush=True)
        print(f"batch export id: {export['id']}", flush=True)
        if args.ready_file:
            info = {
                "url": emulator.url,
                "api_key": emulator.api_key,
                "project_id": emulator.project_id,
                "batch_export_id": export["id"],
            }
            tmp = f"{args.ready_file}.tmp"
            with open(tmp, "w", encoding="utf-8") as out:
                json.dump(info, out)
            os.replace(tmp, args.ready_file)  # atomic: readers never see a partial file
        while not stop.wait(0.2):
            pass
    print("PostHog emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
