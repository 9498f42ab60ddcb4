"""Fixtures for drift tests: river's Shuttle data set and a fresh store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from drift_helpers import SHUTTLE_FEATURES

from plugins.stats import feature_statistics
from store import Store


@pytest.fixture(scope="session")
def shuttle() -> tuple[np.ndarray, np.ndarray]:
    """All 49,097 rows of river's Shuttle: features (rows, 9) and the 0/1 labels."""
    from river import datasets

    features, labels = [], []
    for x, y in datasets.Shuttle():
        features.append([x[name] for name in SHUTTLE_FEATURES])
        labels.append(int(y))
    return np.array(features, np.float64), np.array(labels, np.float64)


@pytest.fixture(scope="session")
def shuttle_reference(shuttle: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Reference statistics of every Shuttle row, as training stores them."""
    return feature_statistics(shuttle[0], SHUTTLE_FEATURES)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "store.db")
    yield opened
    opened.close()
