"""Reference statistics of training features, for drift monitors.

Per feature: count, mean, std (population), min, max, the quantiles in
``QUANTILES`` and a histogram. The histogram has ``HISTOGRAM_BINS``
equal-width bins between the 1 % and 99 % quantiles, plus counts of the
values below and above them. Heavy-tailed features (Shuttle's f2 has a
standard deviation near 85 while 98 % of its values lie in -5..5) would
otherwise put almost every value into one bin.

Every figure is finite for any finite input, including values near the
float64 limit (about 1.8e308), so the statistics always serialise as
strict JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 10

# float64 ends near 1.8e308, so squares of values above about 1.3e154
# overflow (sums of squares over many rows sooner), and so can the
# difference of two values near the end. Columns whose largest magnitude
# exceeds this get their moments and quantiles computed on the values
# divided by that magnitude, then scaled back. Other columns are left
# undivided, so their results stay exact.
_SCALE_ABOVE = 1e150


def feature_statistics(features: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Return ``{"features": {name: stats}, "quantiles": [...], "rows": n}``."""
    features = np.asarray(features, dtype=np.float64)
    return {
        "rows": int(features.shape[0]),
        "quantiles": list(QUANTILES),
        "features": {
            name: column_statistics(features[:, index])
            for index, name in enumerate(names)
        },
    }


def column_statistics(values: np.ndarray) -> dict[str, Any]:
    if len(values) == 0:
        return {"count": 0}
    scale = _scale(values)
    scaled = values / scale
    quantiles = np.quantile(scaled, QUANTILES) * scale
    low, high = float(quantiles[0]), float(quantiles[-1])
    if high <= low:
        # A (nearly) constant column: one bin around its value.
        low, high = float(values.min()), float(values.max())
    edges = _bin_edges(low, high)
    inside = values[(values >= low) & (values <= high)]
    counts, _ = np.histogram(inside, bins=edges)
    return {
        "count": int(len(values)),
        "mean": float(scaled.mean() * scale),
        "std": float(scaled.std() * scale),
        "min": float(values.min()),
        "max": float(values.max()),
        "quantiles": {
            f"p{round(q * 100)}": float(v)
            for q, v in zip(QUANTILES, quantiles, strict=True)
        },
        "histogram": {
            "edges": [float(edge) for edge in edges],
            "counts": [int(count) for count in counts],
            "below": int(np.sum(values < low)),
            "above": int(np.sum(values > high)),
        },
    }


def _scale(values: np.ndarray) -> float:
    largest = float(np.max(np.abs(values)))
    return largest if largest > _SCALE_ABOVE else 1.0


def _bin_edges(low: float, high: float) -> np.ndarray:
    """Return increasing, finite edges of equal-width bins from ``low`` to ``high``.

    ``np.histogram`` fails ("Too many bins for data range") when ``high -
    low`` overflows or is too small to split at this magnitude. The edges
    are passed to it explicitly, so it only compares values with them.
    """
    if high <= low:
        return _one_bin_around(low)
    with np.errstate(over="ignore", invalid="ignore"):
        edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
        if not np.all(np.isfinite(edges)):
            # high - low overflowed; a weighted mean of the ends cannot.
            fractions = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
            edges = low * (1.0 - fractions) + high * fractions
            edges[0], edges[-1] = low, high
    if np.all(edges[1:] > edges[:-1]):
        return edges
    return np.array([low, high])


def _one_bin_around(value: float) -> np.ndarray:
    """Return the edges numpy gives a constant column, ``value`` ± 0.5, kept finite.

    From 2**52 (about 4.5e15) up, the float64 spacing is at least 1, so
    ``value`` ± 0.5 can round back to ``value``. Then the neighbouring floats
    are the edges, or ``value`` itself at either end of the float64 range.
    """
    low, high = value - 0.5, value + 0.5
    if not low < value:
        low = float(np.nextafter(value, -_FLOAT_MAX))
    if not value < high:
        high = float(np.nextafter(value, _FLOAT_MAX))
    return np.array([low, high])


_FLOAT_MAX = float(np.finfo(np.float64).max)
