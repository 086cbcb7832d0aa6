"""Backward-compatible entry point: ``python -m airflow_provider_posthog_bx.testing.emulator``.

The CLI lives in ``airflow_provider_posthog_bx.testing.__main__`` (``python -m
airflow_provider_posthog_bx.testing``); the class in ``airflow_provider_posthog_bx.testing``.
"""

from __future__ import annotations

import sys

from .__main__ import main
from ._emulator import PostHogEmulator

__all__ = ["PostHogEmulator", "main"]

if __name__ == "__main__":
    sys.exit(main())
