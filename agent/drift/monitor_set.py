"""The monitors of one model version in one role: features, prediction, error."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sqlite_utils

from agent.config import DetectorSection, MonitoringSection
from agent.drift import rows
from agent.drift.monitor import Finding, Monitor, MonitorSettings
from agent.drift.reference import ReferenceCdf, ReferenceError
from plugins.detectors import Detector

logger = logging.getLogger(__name__)

FEATURE_PREFIX = "feature:"
PREDICTION = "prediction"
ERROR = "error"


def feature_signal(name: str) -> str:
    return f"{FEATURE_PREFIX}{name}"


def build_detector(section: DetectorSection) -> Detector:
    """Construct the detector plugin a configuration section names."""
    import plugins

    detector_class = plugins.load("detector", section.plugin)
    if not (isinstance(detector_class, type) and issubclass(detector_class, Detector)):
        raise plugins.PluginError(
            f"The detector plugin {section.plugin!r} is not a subclass of "
            "plugins.detectors.Detector."
        )
    return detector_class(section.options)


def monitor_settings(
    monitoring: MonitoringSection, section: DetectorSection, *, rise_only: bool = False
) -> MonitorSettings:
    return MonitorSettings(
        detector=section.plugin,
        detector_options=section.options,
        confirm_rows=monitoring.confirm_rows,
        confirm_z=monitoring.confirm_z,
        baseline_rows=monitoring.baseline_rows,
        history_rows=monitoring.history_rows,
        warmup_rows=monitoring.warmup_rows,
        cooldown_rows=monitoring.cooldown_rows,
        rise_only=rise_only,
    )


def feature_references(reference: Mapping[str, Any]) -> dict[str, ReferenceCdf]:
    """Return a CDF per feature of a version's ``reference_json``.

    A feature whose statistics are unusable is left out with a warning;
    its monitor builds a reference from its first values instead.
    """
    cdfs: dict[str, ReferenceCdf] = {}
    for name, stats in (reference.get("features") or {}).items():
        try:
            cdfs[name] = ReferenceCdf.from_statistics(stats)
        except ReferenceError as error:
            logger.warning(
                "feature %s has no usable reference statistics (%s); its monitor "
                "warms up on served values instead",
                name,
                error,
            )
    return cdfs


class MonitorSet:
    """Every monitor of one model version serving as stable or canary.

    Args:
        model: the model's name.
        role: ``stable`` or ``canary``.
        version: the version number whose traffic is watched.
        monitoring: the model's ``[models.monitoring]`` section.
        feature_names: the model's features in input order.
        references: the reference CDF of each feature that has one.
    """

    def __init__(
        self,
        model: str,
        role: str,
        version: int,
        monitoring: MonitoringSection,
        feature_names: Sequence[str],
        references: Mapping[str, ReferenceCdf],
    ) -> None:
        self.model = model
        self.role = role
        self.version = version
        self.feature_names = list(feature_names)
        feature_settings = monitor_settings(monitoring, monitoring.features)
        self.features = [
            Monitor(
                feature_signal(name),
                feature_settings,
                build_detector(monitoring.features),
                references.get(name),
            )
            for name in self.feature_names
        ]
        self.prediction = Monitor(
            PREDICTION,
            monitor_settings(monitoring, monitoring.prediction),
            build_detector(monitoring.prediction),
        )
        self.error = Monitor(
            ERROR,
            monitor_settings(monitoring, monitoring.error, rise_only=True),
            build_detector(monitoring.error),
        )
        self.dirty = False

    @property
    def monitors(self) -> list[Monitor]:
        return [*self.features, self.prediction, self.error]

    def monitor(self, signal: str) -> Monitor | None:
        return next((m for m in self.monitors if m.signal == signal), None)

    def feed_rows(
        self, features: Sequence[Any], predictions: Sequence[float]
    ) -> list[Finding]:
        """Feed rows of features with their predictions; return the findings.

        A row whose width differs from the model's feature count is counted
        as invalid on every feature monitor; its prediction is still used.
        """
        self.dirty = True
        matrix = self._matrix(features)
        findings: list[Finding] = []
        for column, monitor in enumerate(self.features):
            findings.extend(monitor.feed(matrix[:, column]))
        findings.extend(self.prediction.feed(np.asarray(predictions, np.float64)))
        return findings

    def feed_errors(self, errors: Sequence[float]) -> list[Finding]:
        self.dirty = True
        return self.error.feed(np.asarray(errors, np.float64))

    def add_skipped(self, *, rows: int = 0, errors: int = 0) -> None:
        """Count rows and error values that the service skipped under overload."""
        for monitor in [*self.features, self.prediction]:
            monitor.counts.skipped += rows
        self.error.counts.skipped += errors
        self.dirty = self.dirty or bool(rows or errors)

    def _matrix(self, features: Sequence[Any]) -> np.ndarray:
        width = len(self.feature_names)
        if isinstance(features, np.ndarray) and features.shape[1:] == (width,):
            return features.astype(np.float64, copy=False)
        usable: list[Sequence[Any]] = []
        for row in features:
            if isinstance(row, Mapping):
                row = [row.get(name, math.nan) for name in self.feature_names]
            if _is_row(row, width):
                usable.append(row)
        invalid = len(features) - len(usable)
        for monitor in self.features:
            monitor.counts.invalid += invalid
        try:
            matrix = np.asarray(usable, dtype=np.float64)
        except (TypeError, ValueError):
            # A value that is not a number becomes NaN and is counted as
            # non-finite by its monitor.
            matrix = np.array([[_as_float(value) for value in row] for row in usable])
        return matrix.reshape(len(usable), width)

    # Persistence.

    def save(self, db: sqlite_utils.Database) -> None:
        """Write every monitor's state, inside the caller's transaction."""
        for monitor in self.monitors:
            rows.save_monitor(
                db,
                model=self.model,
                role=self.role,
                version=self.version,
                signal=monitor.signal,
                detector=monitor.settings.detector,
                params=monitor.settings.to_json(),
                state=monitor.to_state(),
            )
        self.dirty = False

    def restore(self, stored: Mapping[str, dict[str, Any]]) -> int:
        """Continue from stored monitor rows of the same version and settings.

        Returns:
            How many monitors were restored; the others start afresh.
        """
        restored = 0
        for monitor in self.monitors:
            row = stored.get(monitor.signal)
            if row is None or row["state"] is None or row["version"] != self.version:
                continue
            if row["params"] != _json_round_trip(monitor.settings.to_json()):
                logger.info(
                    "monitor %s of %s %s changed settings; it starts afresh",
                    monitor.signal,
                    self.model,
                    self.role,
                )
                continue
            monitor.restore(row["state"])
            restored += 1
        return restored


def _is_row(row: Any, width: int) -> bool:
    sequence = isinstance(row, Sequence | np.ndarray) and not isinstance(row, str)
    return sequence and len(row) == width


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _json_round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value))
