"""Hooks: the sync :class:`PostHogHook` (tasks) and the async client used by triggers."""

from __future__ import annotations

from airflow_provider_posthog_bx.hooks.posthog import PostHogHook

__all__ = ["PostHogHook"]
