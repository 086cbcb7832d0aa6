"""Testing helpers: a local PostHog batch-exports API emulator (standard library only)."""

from __future__ import annotations

from ._emulator import PostHogEmulator
from ._faults import FaultHandle
from ._recording import RecordedRequest

__all__ = ["FaultHandle", "PostHogEmulator", "RecordedRequest"]
