"""Testing helpers: a local PostHog batch-exports API emulator (standard library only).

Public face: ``PostHogEmulator`` (with ``FaultHandle`` and ``RecordedRequest``), the CLI
(``python -m airflow_provider_posthog_bx.testing``) and the opt-in pytest plugin
(``airflow_provider_posthog_bx.testing.pytest_plugin``). Inside, a request goes down
``_server`` (HTTP transport, faults, request log) -> ``_pipeline`` (route, auth, scopes,
throttle) -> ``_routes`` (the one route table) -> ``_handlers`` (endpoint logic) -> ``_state``
(stores and lazy lifecycles) and ``_model`` (records and their JSON); ``_http`` holds the
request/response nouns the server and the pipeline share.
"""

from __future__ import annotations

from ._emulator import PostHogEmulator
from ._faults import FaultHandle
from ._recording import RecordedRequest

__all__ = ["FaultHandle", "PostHogEmulator", "RecordedRequest"]
