"""Held-out metrics and reference statistics, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from plugins.metrics import (
    classification_metrics,
    demographic_parity_difference,
    roc_auc,
)
from plugins.stats import feature_statistics


def test_binary_metrics_by_hand():
    y_true = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    y_pred = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1, 0.05])
    metrics = classification_metrics(y_true, y_pred, scores, [0, 1], 1)
    assert metrics["accuracy"] == 6 / 8
    assert metrics["precision"] == 2 / 3
    assert metrics["recall"] == 2 / 3
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["recall_by_class"] == {"0": 4 / 5, "1": 2 / 3}
    assert metrics["support_by_class"] == {"0": 5, "1": 3}
    assert metrics["roc_auc"] == pytest.approx(14 / 15)
    assert "fairness_gap" not in metrics


def test_multiclass_uses_macro_averages():
    y_true = np.array([0, 1, 2, 2])
    y_pred = np.array([0, 2, 2, 2])
    metrics = classification_metrics(y_true, y_pred, None, ["a", "b", "c"], None)
    assert metrics["recall"] == pytest.approx((1 + 0 + 1) / 3)
    assert metrics["precision"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert "roc_auc" not in metrics


def test_roc_auc_counts_ties_half():
    assert roc_auc(np.array([True, False]), np.array([0.5, 0.5])) == 0.5
    assert roc_auc(np.array([True, True]), np.array([0.1, 0.2])) is None


def test_demographic_parity_difference():
    y_pred = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    groups = ["a", "a", "a", "a", "b", "b", "b", "b"]
    assert demographic_parity_difference(y_pred, groups, 2, 1) == 0.25
    assert demographic_parity_difference(y_pred, ["a"] * 8, 2, 1) == 0.0
    with pytest.raises(ValueError, match="51 distinct values"):
        demographic_parity_difference(np.zeros(51), list(range(51)), 2, 1)


def test_feature_statistics():
    values = np.arange(1, 101, dtype=float)
    stats = feature_statistics(
        np.column_stack([values, np.full(100, 3.0)]), ["x", "constant"]
    )
    x = stats["features"]["x"]
    assert stats["rows"] == 100
    assert (x["count"], x["mean"], x["min"], x["max"]) == (100, 50.5, 1.0, 100.0)
    assert x["std"] == pytest.approx(28.86607, rel=1e-5)
    assert x["quantiles"]["p50"] == 50.5
    assert x["quantiles"]["p1"] == pytest.approx(1.99)
    assert len(x["histogram"]["counts"]) == 10
    assert x["histogram"]["below"] == 1
    assert x["histogram"]["above"] == 1
    assert sum(x["histogram"]["counts"]) == 98
    constant = stats["features"]["constant"]
    assert constant["std"] == 0.0
    assert constant["histogram"]["counts"] == [100]
