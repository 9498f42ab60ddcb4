"""Feature monitors on river's Shuttle data set, with the default settings.

Each stream is fed through a MonitorSet in batches of 1,000 rows, the
way the drift thread feeds it, with the anomaly label as the prediction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from drift_helpers import MODEL, SHUTTLE_FEATURES, SHUTTLE_ROWS, make_config, shuffled
from river import drift

from agent.drift.monitor import Finding
from agent.drift.monitor_set import MonitorSet, feature_references

SEEDS = (0, 1, 2, 3, 4)
SHIFT_ROW = 10_000
BATCH_ROWS = 1000


def _feed(
    monitor_set: MonitorSet, features: np.ndarray, predictions: np.ndarray
) -> list[Finding]:
    findings: list[Finding] = []
    for start in range(0, len(features), BATCH_ROWS):
        stop = start + BATCH_ROWS
        findings.extend(
            monitor_set.feed_rows(features[start:stop], predictions[start:stop])
        )
    return findings


def _monitor_set(tmp_path: Path, reference: dict[str, Any]) -> MonitorSet:
    monitoring = make_config(tmp_path).model(MODEL).monitoring
    return MonitorSet(
        MODEL, "stable", 1, monitoring, SHUTTLE_FEATURES, feature_references(reference)
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_iid_replay_raises_no_event(
    tmp_path: Path, shuttle: tuple[np.ndarray, np.ndarray], shuttle_reference, seed: int
) -> None:
    features, labels = shuttle
    order = np.random.default_rng(seed).permutation(SHUTTLE_ROWS)
    monitor_set = _monitor_set(tmp_path, shuttle_reference)

    findings = _feed(monitor_set, features[order], labels[order])

    assert findings == []
    for monitor in monitor_set.features:
        assert monitor.counts.accepted == SHUTTLE_ROWS, monitor.signal
        assert monitor.counts.events == 0, monitor.signal
    assert monitor_set.prediction.counts.events == 0


def test_plain_adwin_fires_on_raw_heavy_tailed_features(
    shuttle: tuple[np.ndarray, np.ndarray],
) -> None:
    # The reason for the reference transform: the same replay, raw values.
    features = shuffled(shuttle[0], 0)[:20_000]
    detections = {}
    for column in (1, 3, 5):  # f2, f4, f6
        detector = drift.ADWIN()
        detections[SHUTTLE_FEATURES[column]] = 0
        for value in features[:, column].tolist():
            detector.update(value)
            detections[SHUTTLE_FEATURES[column]] += detector.drift_detected

    assert detections["f2"] >= 5
    assert detections["f4"] >= 5
    assert detections["f6"] >= 5


@pytest.mark.parametrize("seed", SEEDS)
def test_f1_half_std_shift_found_within_500(
    tmp_path: Path, shuttle: tuple[np.ndarray, np.ndarray], shuttle_reference, seed: int
) -> None:
    features, labels = shuttle
    order = np.random.default_rng(seed).permutation(SHUTTLE_ROWS)
    stream = features[order].copy()
    stream[SHIFT_ROW:, 0] += 0.5 * features[:, 0].std()
    monitor_set = _monitor_set(tmp_path, shuttle_reference)

    findings = _feed(monitor_set, stream, labels[order])

    assert [finding.signal for finding in findings] == ["feature:f1"]
    delay = findings[0].sample_index - SHIFT_ROW
    assert 0 < delay <= 500
    stats = findings[0].stats
    assert stats["change_index"] <= findings[0].sample_index
    assert stats["after"]["mean"] > stats["before"]["mean"]
    assert stats["transformed"]["z"] >= 5.0
