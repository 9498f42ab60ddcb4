"""tabular-mlp on features whose standardisation overflows: a DataError naming them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plugins import DataError, TabularData, TrainingJob
from plugins.recipes.tabular_mlp import TabularMLP, standardise


class NullReporter:
    def progress(self, **values) -> None:
        pass

    def metric(self, name: str, value: float) -> None:
        pass


def _data(column: np.ndarray) -> TabularData:
    rows = len(column)
    rng = np.random.default_rng(0)
    target = np.arange(rows) % 2
    features = np.column_stack([rng.normal(size=rows) + target, column])
    return TabularData(
        feature_names=["plain", "huge"],
        features=features,
        target_name="y",
        target=target.tolist(),
        sensitive_name=None,
        sensitive=None,
        sha256="0" * 64,
    )


def _train(tmp_path: Path, data: TabularData):
    job = TrainingJob(
        run_id=1,
        model="m",
        data=data,
        params=TabularMLP.validate_params({"max_epochs": 2}),
        device="cpu",
        artifact_dir=tmp_path / "artifact",
        reporter=NullReporter(),
    )
    return TabularMLP().train(job)


@pytest.mark.parametrize("magnitude", [1e308, 1e200])
def test_overflowing_feature_is_rejected(tmp_path: Path, magnitude: float):
    column = np.array([-magnitude, magnitude] * 40)
    with pytest.raises(DataError) as caught:
        _train(tmp_path, _data(column))
    assert str(caught.value) == (
        "Feature 'huge' cannot be standardised: its standard deviation over the "
        f"training rows overflows float64 (its values reach {magnitude:g} in "
        "magnitude). Rescale it, e.g. with another unit or a logarithm, so that "
        "its values stay far below 1e154."
    )


def test_value_beyond_float32_after_standardising_is_rejected():
    # Every training row of "huge" is 0, so its std becomes 1, and the one
    # validation row lies 1e39 standard deviations out, beyond float32.
    features = np.column_stack([np.arange(4.0), [0.0, 0.0, 0.0, 1e39]])
    with pytest.raises(DataError) as caught:
        standardise(features, np.array([0, 1, 2]), ["plain", "huge"])
    assert str(caught.value) == (
        "Feature 'huge' cannot be standardised: a value lies 1e+39 standard "
        "deviations from its training mean, beyond the float32 range the network "
        "computes in. Rescale it, e.g. with another unit or a logarithm, or remove "
        "the outlier."
    )


def test_standardise_returns_training_mean_and_std():
    features = np.column_stack([[1.0, 3.0, 5.0], [2.0, 2.0, 9.0]])
    mean, std, scaled = standardise(features, np.array([0, 1]), ["a", "b"])
    assert mean.tolist() == [2.0, 2.0]
    assert std.tolist() == [1.0, 1.0]
    assert scaled.tolist() == [[-1.0, 0.0], [1.0, 0.0], [3.0, 7.0]]


def test_large_but_safe_feature_trains(tmp_path: Path):
    column = np.array([-1e100, 1e100] * 40)
    result = _train(tmp_path, _data(column))
    assert np.isfinite(result.metrics["accuracy"])
