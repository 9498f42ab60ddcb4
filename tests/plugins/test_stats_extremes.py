"""Reference statistics of columns whose values approach the float64 range."""

from __future__ import annotations

import json

import numpy as np
import pytest

from plugins.stats import HISTOGRAM_BINS, column_statistics, feature_statistics

FLOAT_MAX = float(np.finfo(np.float64).max)


def _assert_edges_usable(stats: dict) -> None:
    edges = np.asarray(stats["histogram"]["edges"])
    assert np.all(np.isfinite(edges))
    assert np.all(edges[1:] > edges[:-1])


def test_symmetric_extremes_give_finite_statistics():
    values = np.array([-1e308, 1e308, 0.0, 1.0, -1.0] * 20)
    stats = column_statistics(values)

    assert stats["count"] == 100
    assert stats["mean"] == 0.0
    assert stats["std"] == pytest.approx(np.sqrt(0.4) * 1e308, rel=1e-12)
    assert (stats["min"], stats["max"]) == (-1e308, 1e308)
    assert stats["quantiles"]["p1"] == -1e308
    assert stats["quantiles"]["p50"] == 0.0
    assert stats["quantiles"]["p99"] == 1e308
    _assert_edges_usable(stats)
    assert len(stats["histogram"]["edges"]) == HISTOGRAM_BINS + 1
    assert stats["histogram"]["edges"][5] == 0.0
    assert stats["histogram"]["counts"] == [20, 0, 0, 0, 20, 40, 0, 0, 0, 20]
    assert stats["histogram"]["below"] == 0
    assert stats["histogram"]["above"] == 0


def test_narrow_range_at_huge_magnitude_uses_one_bin():
    upper = float(np.nextafter(1e308, np.inf))
    values = np.array([1e308, upper] * 50)
    stats = column_statistics(values)

    assert stats["histogram"]["edges"] == [1e308, upper]
    assert stats["histogram"]["counts"] == [100]
    assert stats["mean"] == pytest.approx(1e308, rel=1e-15)
    assert stats["std"] < 1e293


@pytest.mark.parametrize("value", [1e308, -1e308, FLOAT_MAX, -FLOAT_MAX])
def test_constant_extreme_column_has_one_finite_bin(value: float):
    stats = column_statistics(np.full(40, value))

    _assert_edges_usable(stats)
    assert len(stats["histogram"]["edges"]) == 2
    assert stats["histogram"]["edges"][0] <= value <= stats["histogram"]["edges"][1]
    assert stats["histogram"]["counts"] == [40]
    assert stats["mean"] == value
    assert stats["std"] == 0.0


def test_constant_column_bin_is_one_wide():
    stats = column_statistics(np.full(10, 3.0))
    assert stats["histogram"]["edges"] == [2.5, 3.5]
    assert stats["histogram"]["counts"] == [10]


def test_extreme_statistics_are_strict_json():
    features = np.column_stack(
        [np.array([-FLOAT_MAX, FLOAT_MAX] * 10), np.arange(20, dtype=float)]
    )
    stats = feature_statistics(features, ["huge", "plain"])

    text = json.dumps(stats, allow_nan=False)
    assert json.loads(text)["features"]["plain"]["max"] == 19.0
    _assert_edges_usable(stats["features"]["huge"])
    assert stats["features"]["huge"]["mean"] == 0.0
