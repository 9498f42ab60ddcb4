"""The tabular-mlp recipe in this process: training, metrics, artifact round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from plugins import DataError, PluginConfigError, TabularData, TrainingJob
from plugins.metrics import demographic_parity_difference
from plugins.recipes.tabular_mlp import TabularMLP, load_model
from store.artifacts import ArtifactError, write_manifest


class ListReporter:
    def __init__(self) -> None:
        self.progress_events: list[dict] = []
        self.metrics: list[tuple[str, float]] = []

    def progress(self, **values) -> None:
        self.progress_events.append(values)

    def metric(self, name: str, value: float) -> None:
        self.metrics.append((name, value))


def _blobs(
    rows: int = 400, seed: int = 1, positive_share: float = 0.5, classes: int = 2
) -> TabularData:
    rng = np.random.default_rng(seed)
    target = (
        (rng.random(rows) < positive_share).astype(int)
        if classes == 2
        else rng.integers(0, classes, rows)
    )
    features = rng.normal(size=(rows, 3)) + target[:, None] * 3.0
    features[:, 2] *= 100.0  # a feature on another scale, which standardisation handles
    return TabularData(
        feature_names=["a", "b", "c"],
        features=features,
        target_name="y",
        target=target.tolist(),
        sensitive_name=None,
        sensitive=None,
        sha256="0" * 64,
    )


def _train(tmp_path: Path, data: TabularData, **params):
    job = TrainingJob(
        run_id=1,
        model="m",
        data=data,
        params=TabularMLP.validate_params({"max_epochs": 10, **params}),
        device="cpu",
        artifact_dir=tmp_path / "artifact",
        reporter=ListReporter(),
    )
    result = TabularMLP().train(job)
    write_manifest(job.artifact_dir, job.written)
    return job, result


def test_training_learns_and_reports(tmp_path: Path):
    job, result = _train(tmp_path, _blobs())
    metrics = result.metrics
    assert metrics["accuracy"] >= 0.95
    assert metrics["rows"] == 80
    assert metrics["train_rows"] == 320
    assert metrics["positive_class"] == "1"
    assert 0.95 <= metrics["roc_auc"] <= 1.0
    assert set(metrics["recall_by_class"]) == {"0", "1"}
    assert result.weights_file == "model.pt"
    assert sorted(result.reference_rows) == result.reference_rows
    assert len(result.reference_rows) == 320
    assert [event["epoch"] for event in job.reporter.progress_events] == list(
        range(1, metrics["epochs"] + 1)
    )
    assert job.reporter.metrics[0][0] == "validation_loss"
    assert job.written == ["model.pt", "model.json"]


def test_artifact_is_tensors_only_with_json_metadata(tmp_path: Path):
    data = _blobs()
    job, result = _train(tmp_path, data)
    state = torch.load(job.artifact_dir / "model.pt", weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in state.values())
    metadata = json.loads((job.artifact_dir / "model.json").read_text())
    assert metadata["layer_sizes"] == [3, 64, 32, 2]
    assert metadata["feature_names"] == ["a", "b", "c"]
    assert metadata["classes"] == [0, 1]
    assert len(metadata["standardise"]["mean"]) == 3
    assert metadata["standardise"]["std"][2] > 50

    model = load_model(job.artifact_dir)
    predicted = model.predict_proba(data.features).argmax(axis=1)
    assert np.mean(predicted == np.array(data.target)) >= 0.95
    with pytest.raises(ValueError, match=r"Expected features of shape \[rows, 3\]"):
        model.predict_proba([[1.0, 2.0]])


def test_same_seed_same_weights(tmp_path: Path):
    first, _ = _train(tmp_path / "one", _blobs())
    second, _ = _train(tmp_path / "two", _blobs())
    third, _ = _train(tmp_path / "three", _blobs(), seed=7)
    weights = [
        torch.load(job.artifact_dir / "model.pt", weights_only=True)
        for job in (first, second, third)
    ]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    assert not all(torch.equal(weights[0][key], weights[2][key]) for key in weights[0])


def test_early_stopping_after_patience(tmp_path: Path):
    _, result = _train(tmp_path, _blobs(), max_epochs=50, patience=2, min_delta=100.0)
    assert result.metrics["epochs"] == 3


def test_class_weighting_raises_minority_recall(tmp_path: Path):
    data = _blobs(rows=1000, seed=3, positive_share=0.05)
    noisy = data.features + np.random.default_rng(4).normal(
        scale=2.5, size=data.features.shape
    )
    data = TabularData(["a", "b", "c"], noisy, "y", data.target, None, None, "0" * 64)
    _, balanced = _train(
        tmp_path / "balanced", data, class_weighting="balanced", max_epochs=20
    )
    _, unweighted = _train(
        tmp_path / "none", data, class_weighting="none", max_epochs=20
    )
    assert balanced.metrics["recall"] > unweighted.metrics["recall"]


def test_fairness_gap_with_sensitive_attribute(tmp_path: Path):
    data = _blobs()
    groups = ["g1" if label else "g0" for label in data.target]
    data = TabularData(
        data.feature_names, data.features, "y", data.target, "group", groups, "0" * 64
    )
    job, result = _train(tmp_path, data)
    rows = sorted(set(range(400)) - set(result.reference_rows))
    model = load_model(job.artifact_dir)
    predicted = model.predict_proba(data.features[rows]).argmax(axis=1)
    expected = demographic_parity_difference(
        predicted, [groups[row] for row in rows], 2, 1
    )
    assert result.metrics["fairness_gap"] == pytest.approx(expected)
    assert result.metrics["fairness_gap"] > 0.8


def test_multiclass_has_no_roc_auc(tmp_path: Path):
    _, result = _train(tmp_path, _blobs(classes=3))
    assert "roc_auc" not in result.metrics
    assert "positive_class" not in result.metrics
    assert set(result.metrics["recall_by_class"]) == {"0", "1", "2"}


def test_max_rows_subsamples(tmp_path: Path):
    _, result = _train(tmp_path, _blobs(), max_rows=100)
    assert result.metrics["rows"] + result.metrics["train_rows"] == 100


def test_one_class_target_is_rejected(tmp_path: Path):
    data = _blobs()
    data = TabularData(
        data.feature_names, data.features, "y", [1] * 400, None, None, "0" * 64
    )
    with pytest.raises(DataError, match=r"only one class \(1 in every row\)"):
        _train(tmp_path, data)


def test_unknown_positive_class_is_rejected(tmp_path: Path):
    with pytest.raises(
        DataError,
        match=r"positive_class 'yes' is not a label of the target; the labels are "
        r"\[0, 1\]",
    ):
        _train(tmp_path, _blobs(), positive_class="yes")


def test_params_validation():
    params = TabularMLP.validate_params({"hidden_layers": [8], "dropout": 0.5})
    assert params["hidden_layers"] == [8]
    assert params["dropout"] == 0.5
    assert params["max_epochs"] == 30
    with pytest.raises(
        PluginConfigError, match=r"dropout must be in \[0.0, 1.0\) \(got 1.0\)"
    ):
        TabularMLP.validate_params({"dropout": 1.0})
    with pytest.raises(
        PluginConfigError, match="each hidden layer width must be an integer"
    ):
        TabularMLP.validate_params({"hidden_layers": [8, 0]})


def test_truncated_weights_are_not_loaded(tmp_path: Path):
    job, _ = _train(tmp_path, _blobs())
    weights = job.artifact_dir / "model.pt"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ArtifactError, match="truncated or replaced"):
        load_model(job.artifact_dir)


def test_expected_hash_must_match(tmp_path: Path):
    job, _ = _train(tmp_path, _blobs())
    with pytest.raises(ArtifactError, match="the version records"):
        load_model(job.artifact_dir, expected_sha256="f" * 64)
