"""The one place that knows where Airflow 2 and Airflow 3 keep the names this provider uses.

Every other module imports Airflow names from here. Importing this module imports Airflow's
public base classes only: no metadata database, no network.

Where each name lives (checked on 2.10.5, 3.0.6, 3.1.8, 3.2.2 and 3.3.2):

- ``airflow.sdk``: BaseOperator, BaseSensorOperator, BaseOperatorLink, Context, PokeReturnValue,
  Connection from 3.0; BaseHook (with ``aget_connection``) from 3.1; ``conf`` from 3.2.
- ``airflow.sdk.exceptions``: the task exceptions from 3.2 (``airflow.exceptions`` warns there).
- ``airflow.triggers.base``: BaseTrigger and TriggerEvent on every line, BaseEventTrigger (the
  triggers an ``AssetWatcher`` runs) from 3.0; on Airflow 2 BaseEventTrigger is BaseTrigger.
  They are imported on first use (module ``__getattr__``): operators and sensors import
  triggers only when they defer, so DAG parsing does not pay for them.

mypy checks one line at a time: the ``AIRFLOW_V_*`` flags are declared ``always_true`` (Airflow 3)
or ``always_false`` (Airflow 2) on its command line, so only the branch for the installed Airflow
is type-checked (see the Makefile's ``lint`` target).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow import __version__ as _airflow_version
from packaging.version import Version

AIRFLOW_VERSION = Version(Version(_airflow_version).base_version)
"""The installed Airflow's release, without pre-release or local parts (3.3.0rc1 -> 3.3.0)."""

AIRFLOW_V_3_0_PLUS: bool = AIRFLOW_VERSION.release >= (3, 0)
AIRFLOW_V_3_1_PLUS: bool = AIRFLOW_VERSION.release >= (3, 1)
AIRFLOW_V_3_2_PLUS: bool = AIRFLOW_VERSION.release >= (3, 2)
AIRFLOW_V_3_3_PLUS: bool = AIRFLOW_VERSION.release >= (3, 3)

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    if AIRFLOW_V_3_0_PLUS:
        from airflow.triggers.base import BaseEventTrigger
    else:
        BaseEventTrigger = BaseTrigger

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import (
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
        Connection,
        Context,
        PokeReturnValue,
    )
    from airflow.sdk.execution_time.xcom import XCom
else:
    from airflow.models.baseoperator import BaseOperator
    from airflow.models.baseoperatorlink import BaseOperatorLink
    from airflow.models.connection import Connection
    from airflow.models.xcom import XCom
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue
    from airflow.utils.context import Context

if AIRFLOW_V_3_1_PLUS:
    from airflow.sdk import BaseHook
else:
    from airflow.hooks.base import BaseHook

if AIRFLOW_V_3_2_PLUS:
    from airflow.sdk import conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
        TaskDeferred,
    )
    from airflow.sdk.types import TaskInstanceKey
else:
    from airflow.configuration import conf
    from airflow.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
        TaskDeferred,
    )
    from airflow.models.taskinstancekey import TaskInstanceKey


def __getattr__(name: str) -> Any:
    if name in ("BaseTrigger", "TriggerEvent"):
        from airflow.triggers import base

        return getattr(base, name)
    if name == "BaseEventTrigger":
        from airflow.triggers import base

        return getattr(base, "BaseEventTrigger", base.BaseTrigger)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def variable_class() -> Any:
    """Airflow's ``Variable`` (imported on first use: on Airflow 2 it loads the ORM models)."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import Variable
    else:
        from airflow.models.variable import Variable
    return Variable


def asset_classes() -> tuple[type[Any], type[Any]]:
    """Airflow's ``(Asset, AssetAlias)``; on Airflow 2 ``(Dataset, DatasetAlias)``, their
    2.10 names."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import Asset, AssetAlias

        return Asset, AssetAlias
    else:
        from airflow.datasets import Dataset, DatasetAlias

        return Dataset, DatasetAlias


async def get_connection_async(conn_id: str) -> Connection:
    """Return the Airflow connection ``conn_id`` without blocking the triggerer's event loop.

    :param conn_id: the Airflow connection id, e.g. ``posthog_default``.
    """
    if AIRFLOW_V_3_1_PLUS:
        return await BaseHook.aget_connection(conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id)


__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "BaseEventTrigger",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "BaseTrigger",
    "Connection",
    "Context",
    "PokeReturnValue",
    "TaskDeferred",
    "TaskInstanceKey",
    "TriggerEvent",
    "XCom",
    "asset_classes",
    "conf",
    "get_connection_async",
    "variable_class",
]
