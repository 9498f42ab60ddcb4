"""A version must run one inference before it takes traffic."""

from __future__ import annotations

import numpy as np
import pytest

from agent.serving.worker import loader
from agent.serving.worker.loader import LoadError, load_version


class Predictor:
    feature_names = ("a", "b")
    classes = (0, 1)

    def __init__(self, answer) -> None:
        self.answer = answer
        self.calls: list[np.ndarray] = []

    def predict_proba(self, features: np.ndarray):
        self.calls.append(features)
        return self.answer(features)


def _load(monkeypatch, predictor: Predictor):
    monkeypatch.setattr(loader, "_loader", lambda name: lambda path, sha: predictor)
    version = {
        "model": "m",
        "number": 3,
        "artifact_path": "/nowhere",
        "artifact_sha256": "0" * 64,
        "lineage": {"recipe": {"plugin": "tabular-mlp"}},
    }
    return load_version(version)


def test_warm_up_runs_one_row(monkeypatch) -> None:
    predictor = Predictor(lambda x: np.full((len(x), 2), 0.5))

    served = _load(monkeypatch, predictor)

    assert served.number == 3
    assert len(predictor.calls) == 1
    assert predictor.calls[0].shape == (1, 2)
    assert predictor.calls[0].dtype == np.float32


def test_warm_up_error_is_a_load_error(monkeypatch) -> None:
    def broken(features):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(LoadError, match="failed its warm-up inference") as raised:
        _load(monkeypatch, Predictor(broken))
    assert "mat1 and mat2" in str(raised.value)


def test_warm_up_wrong_output_shape(monkeypatch) -> None:
    predictor = Predictor(lambda x: np.zeros((len(x), 3)))

    with pytest.raises(LoadError, match=r"shape \[1, 3\].*expected \[1, 2\]"):
        _load(monkeypatch, predictor)
