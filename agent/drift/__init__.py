"""Drift monitoring: river detectors on every served model's traffic.

The control process imports this package; river is imported only when
the drift thread builds its first detector.
"""

from agent.drift.monitor import Finding, Monitor, MonitorSettings, MonitorStatus
from agent.drift.monitor_set import MonitorSet
from agent.drift.notifications import NotificationService
from agent.drift.policies import (
    AbortCanaryOnDrift,
    DriftEvent,
    DriftHook,
    RetrainOnDrift,
)
from agent.drift.reference import ReferenceCdf
from agent.drift.service import DriftService, prediction_value

__all__ = [
    "AbortCanaryOnDrift",
    "DriftEvent",
    "DriftHook",
    "DriftService",
    "Finding",
    "Monitor",
    "MonitorSet",
    "MonitorSettings",
    "MonitorStatus",
    "NotificationService",
    "ReferenceCdf",
    "RetrainOnDrift",
    "prediction_value",
]
