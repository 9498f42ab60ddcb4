"""Reference statistics of training features, for drift monitors.

Per feature: count, mean, std (population), min, max, the quantiles in
``QUANTILES`` and a histogram. The histogram has ``HISTOGRAM_BINS``
equal-width bins between the 1 % and 99 % quantiles, plus counts of the
values below and above them. Heavy-tailed features (Shuttle's f2 has a
standard deviation near 85 while 98 % of its values lie in -5..5) would
otherwise put almost every value into one bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 10


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
    quantiles = np.quantile(values, QUANTILES)
    low, high = float(quantiles[0]), float(quantiles[-1])
    if high <= low:
        # A (nearly) constant column: one bin around its value.
        low, high = float(values.min()), float(values.max())
    bins = 1 if high <= low else HISTOGRAM_BINS
    inside = values[(values >= low) & (values <= high)]
    counts, edges = np.histogram(
        inside, bins=bins, range=(low, high) if high > low else None
    )
    return {
        "count": int(len(values)),
        "mean": float(values.mean()),
        "std": float(values.std()),
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
