"""The reference transform: each value becomes its rank in the training data.

Raw heavy-tailed values make mean-based detectors such as ADWIN fire on
outliers. Take river's Shuttle data set (49,097 rows), shuffled so that
there is no drift. Plain ``river.drift.ADWIN`` on the raw features
reports 12 to 14 changes on f2, 7 to 10 on f4 and 11 to 14 on f6 in the
first 20,000 rows (river 0.26, shuffle seeds 0 to 2). One value near
5,000 among values within -5..5 is enough to move the window mean.

A monitor therefore feeds its detector ``u = F(x)``, where ``F`` is the
reference CDF of the signal: piecewise linear through the knots that the
version's reference statistics give (``plugins.stats``). The knots are
the minimum (u = 0), the 1 % quantile (u = share of values below it),
every histogram edge up to the 99 % quantile (u = cumulative share of
the bins) and the maximum (u = 1). Values beyond the reference minimum
or maximum map to 0 or 1. So ``u`` is bounded in [0, 1], an outlier
moves it by at most 1, and a shift of the bulk of the distribution moves
it by the share of reference values it crosses.

For discrete data, ``u`` is only monotone, not uniform under the
reference, because every copy of a value lands on the same point. The
detectors compare the stream with its own past, so they need only a
fixed monotone map, not an exact probability integral transform.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


class ReferenceError(ValueError):
    """Reference statistics that cannot define a transform."""


@dataclass(frozen=True)
class ReferenceCdf:
    """A piecewise-linear CDF through strictly increasing knots.

    Attributes:
        xs: knot positions, strictly increasing, at least one.
        ps: the CDF at each knot, non-decreasing in [0, 1].
        mean: the reference mean of the raw values, for event statistics.
        std: the reference standard deviation of the raw values.
    """

    xs: tuple[float, ...]
    ps: tuple[float, ...]
    mean: float
    std: float

    @classmethod
    def from_statistics(cls, stats: Mapping[str, Any]) -> ReferenceCdf:
        """Build the CDF from one column of ``plugins.stats.column_statistics``.

        Raises:
            ReferenceError: the statistics miss a key or describe no rows.
        """
        try:
            count = int(stats["count"])
            histogram = stats["histogram"]
            edges = [float(edge) for edge in histogram["edges"]]
            counts = [int(value) for value in histogram["counts"]]
            below = int(histogram["below"])
            low, high = float(stats["min"]), float(stats["max"])
            mean, std = float(stats["mean"]), float(stats["std"])
        except (KeyError, TypeError, ValueError) as error:
            raise ReferenceError(
                f"The reference statistics lack {error}; expected the format of "
                "plugins.stats.column_statistics."
            ) from None
        if count <= 0 or len(edges) != len(counts) + 1:
            raise ReferenceError(
                f"The reference statistics describe {count} rows with "
                f"{len(edges)} histogram edges and {len(counts)} bins."
            )
        xs = [low, edges[0]]
        ps = [0.0, below / count]
        cumulative = below
        for edge, bin_count in zip(edges[1:], counts, strict=True):
            cumulative += bin_count
            xs.append(edge)
            ps.append(cumulative / count)
        xs.append(high)
        ps.append(1.0)
        return cls._from_knots(xs, ps, mean, std)

    @classmethod
    def from_sample(cls, values: np.ndarray) -> ReferenceCdf:
        """Build the CDF from a sample, with the same knots as ``from_statistics``."""
        from plugins.stats import column_statistics

        return cls.from_statistics(column_statistics(np.asarray(values, np.float64)))

    @classmethod
    def _from_knots(
        cls, xs: list[float], ps: list[float], mean: float, std: float
    ) -> ReferenceCdf:
        # A knot at or left of the previous one is dropped, so that the CDF
        # stays a function. The 1 % quantile may equal the minimum, and for
        # a constant column v, plugins.stats spans its one bin from v - 0.5
        # to v + 0.5.
        kept_xs, kept_ps = [xs[0]], [ps[0]]
        for x, p in zip(xs[1:], ps[1:], strict=True):
            if x > kept_xs[-1]:
                kept_xs.append(x)
                kept_ps.append(max(p, kept_ps[-1]))
        kept_ps[-1] = 1.0 if len(kept_ps) > 1 else kept_ps[-1]
        return cls(tuple(kept_xs), tuple(kept_ps), mean, std)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Map finite values to [0, 1]; vectorised over a 1-D array."""
        return np.interp(values, self.xs, self.ps, left=0.0, right=1.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "xs": list(self.xs),
            "ps": list(self.ps),
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReferenceCdf:
        return cls(
            tuple(data["xs"]),
            tuple(data["ps"]),
            float(data["mean"]),
            float(data["std"]),
        )
