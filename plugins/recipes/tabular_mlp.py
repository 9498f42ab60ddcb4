"""``tabular-mlp``: a PyTorch multilayer perceptron for tabular classification.

Training standardises the features with the training split's mean and
standard deviation. It weights classes inversely to their frequency
(``class_weighting = "balanced"``) and splits the rows into training and
validation sets per class with a seeded generator. It stops early when
the validation loss has not improved by ``min_delta`` for ``patience``
epochs, and keeps the best epoch's weights. The metrics are computed on
the validation split (see ``plugins.metrics``).

The artifact is two files: ``model.pt``, the state dict saved with
``torch.save`` (tensors only, so ``torch.load(weights_only=True)`` reads
it), and ``model.json``, the layer sizes, feature names, classes and the
standardisation mean and std. ``load_model`` reads both back.

torch is imported inside the functions that need it, because the agent's
control process imports this module to validate parameters.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from plugins._options import check_type
from plugins.interface import (
    DataError,
    PluginConfigError,
    Recipe,
    TrainingJob,
    TrainingResult,
)

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.pt"
METADATA_FILE = "model.json"
METADATA_FORMAT = 1
ACTIVATIONS = ("relu", "gelu", "tanh")
CLASS_WEIGHTINGS = ("balanced", "none")

DEFAULTS: dict[str, Any] = {
    "hidden_layers": [64, 32],
    "activation": "relu",
    "dropout": 0.0,
    "learning_rate": 1e-3,
    "weight_decay": 0.0,
    "batch_size": 256,
    "max_epochs": 30,
    "patience": 5,
    "min_delta": 1e-4,
    "validation_fraction": 0.2,
    "class_weighting": "balanced",
    "max_rows": None,
    "positive_class": None,
    "seed": 0,
    "cpu_threads": 1,
}


class TabularMLP(Recipe):
    """Parameters (``[models.recipe] params``), with their defaults:

    - ``hidden_layers`` ([64, 32]): widths of the hidden layers.
    - ``activation`` ("relu"): relu, gelu or tanh.
    - ``dropout`` (0.0): dropout probability after each hidden layer.
    - ``learning_rate`` (0.001) and ``weight_decay`` (0.0): AdamW settings.
    - ``batch_size`` (256), ``max_epochs`` (30).
    - ``patience`` (5), ``min_delta`` (0.0001): early stopping on the
      validation loss.
    - ``validation_fraction`` (0.2): share of each class held out.
    - ``class_weighting`` ("balanced"): "balanced" weights each class by
      rows / (classes * class rows); "none" weights all equally.
    - ``max_rows`` (none): train on a seeded random sample of this many
      rows, to bound the time of a run on a large data set.
    - ``positive_class`` (none): the label whose precision, recall and F1
      are reported for a binary target. Default: the greater label, as in
      scikit-learn (1 for 0/1 labels).
    - ``seed`` (0): seeds the split, the sample, the weights and the batches.
    - ``cpu_threads`` (1): torch's intra-op threads on the CPU. Batches of a
      small network are too short to split well: full Shuttle (49,097 rows,
      30 epochs) trained in 4.3 s with 1 thread and 6.9 s with 2 on a 2-core
      machine (``python -m agent.training.worker``, torch 2.13 CPU).
    """

    name = "tabular-mlp"

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise PluginConfigError(
                f"tabular-mlp: unknown parameter {unknown[0]!r}; known parameters: "
                f"{', '.join(sorted(DEFAULTS))}."
            )
        merged = {**DEFAULTS, **params}
        _check_layers(merged["hidden_layers"])
        _check_choice("activation", merged["activation"], ACTIVATIONS)
        _check_choice("class_weighting", merged["class_weighting"], CLASS_WEIGHTINGS)
        _check_number("dropout", merged["dropout"], low=0.0, high=1.0, high_open=True)
        _check_number(
            "learning_rate", merged["learning_rate"], low=0.0, low_open=True, high=10.0
        )
        _check_number("weight_decay", merged["weight_decay"], low=0.0, high=10.0)
        _check_number("min_delta", merged["min_delta"], low=0.0, high=math.inf)
        _check_number(
            "validation_fraction",
            merged["validation_fraction"],
            low=0.0,
            high=1.0,
            low_open=True,
            high_open=True,
        )
        integers = (
            ("batch_size", 1),
            ("max_epochs", 1),
            ("patience", 1),
            ("seed", 0),
            ("cpu_threads", 1),
        )
        for key, low in integers:
            _check_integer(key, merged[key], low)
        if merged["max_rows"] is not None:
            _check_integer("max_rows", merged["max_rows"], 2)
        positive = merged["positive_class"]
        if positive is not None and (
            isinstance(positive, bool) or not isinstance(positive, int | str)
        ):
            raise PluginConfigError(
                f"tabular-mlp: positive_class must be a label, an integer or a string "
                f"(got {positive!r})."
            )
        merged["dropout"] = float(merged["dropout"])
        merged["learning_rate"] = float(merged["learning_rate"])
        merged["weight_decay"] = float(merged["weight_decay"])
        merged["min_delta"] = float(merged["min_delta"])
        merged["validation_fraction"] = float(merged["validation_fraction"])
        merged["hidden_layers"] = list(merged["hidden_layers"])
        return merged

    def train(self, job: TrainingJob) -> TrainingResult:
        import numpy as np
        import torch

        params = job.params
        rng = np.random.default_rng(params["seed"])
        classes, y = _encode_labels(job.data.target)
        positive_index = _positive_index(classes, params["positive_class"])
        rows = _sample_rows(len(y), params["max_rows"], rng)
        train_rows, validation_rows = _stratified_split(
            y, rows, params["validation_fraction"], rng
        )
        mean, std, standardised = standardise(
            job.data.features, train_rows, job.data.feature_names
        )

        device = _device(job)
        if device.type == "cpu":
            torch.set_num_threads(params["cpu_threads"])
        torch.manual_seed(params["seed"])
        network = build_network(
            len(job.data.feature_names),
            params["hidden_layers"],
            len(classes),
            params["activation"],
            params["dropout"],
        ).to(device)
        trainer = _Trainer(job, network, device, standardised, y, classes, train_rows)
        best_state, epochs_run = trainer.fit(validation_rows)
        network.load_state_dict(best_state)

        probabilities = trainer.predict_proba(validation_rows)
        metrics = _metrics(
            job, y, validation_rows, probabilities, classes, positive_index
        )
        metrics["epochs"] = epochs_run
        metrics["train_rows"] = int(len(train_rows))
        if job.rank == 0:
            _write_artifact(job, network, classes, positive_index, mean, std)
        trainer.close()
        return TrainingResult(
            metrics=metrics,
            weights_file=WEIGHTS_FILE,
            reference_rows=train_rows.tolist(),
        )


class _Trainer:
    """The epoch loop, with DistributedDataParallel when run under torchrun."""

    def __init__(self, job, network, device, features, y, classes, train_rows) -> None:
        import numpy as np
        import torch

        self.job = job
        self.params = job.params
        self.device = device
        self.features = torch.tensor(features, dtype=torch.float32, device=device)
        self.y = torch.tensor(y, dtype=torch.long, device=device)
        self.train_rows = torch.tensor(train_rows, dtype=torch.long)
        self.network = network
        self.model = _wrap_distributed(network, job, device)
        counts = np.bincount(y[train_rows], minlength=len(classes)).astype(np.float64)
        weights = None
        if self.params["class_weighting"] == "balanced":
            weights = len(train_rows) / (len(classes) * np.maximum(counts, 1.0))
            weights = torch.tensor(weights, dtype=torch.float32, device=device)
        self.loss = torch.nn.CrossEntropyLoss(weight=weights)
        self.optimizer = torch.optim.AdamW(
            network.parameters(),
            lr=self.params["learning_rate"],
            weight_decay=self.params["weight_decay"],
        )
        self.generator = torch.Generator().manual_seed(self.params["seed"])

    def fit(self, validation_rows) -> tuple[dict, int]:
        best_loss, best_state, stale, step, epoch = math.inf, None, 0, 0, 0
        validation = self._tensor_rows(validation_rows)
        for epoch in range(1, self.params["max_epochs"] + 1):
            train_loss, step = self._epoch(step)
            validation_loss = self._validation_loss(validation)
            self.job.progress(
                epoch=epoch, step=step, loss=train_loss, validation_loss=validation_loss
            )
            self.job.metric("validation_loss", validation_loss)
            if validation_loss < best_loss - self.params["min_delta"]:
                best_loss, stale = validation_loss, 0
                best_state = copy.deepcopy(self.network.state_dict())
            else:
                stale += 1
            if self._agree_to_stop(stale >= self.params["patience"]):
                break
        return best_state or copy.deepcopy(self.network.state_dict()), epoch

    def _epoch(self, step: int) -> tuple[float, int]:
        import torch

        self.model.train()
        order = self.train_rows[
            torch.randperm(len(self.train_rows), generator=self.generator)
        ]
        # Every rank draws the same permutation and takes its own stride.
        order = order[self.job.rank :: self.job.world_size].to(self.device)
        total, batches = 0.0, 0
        for start in range(0, len(order), self.params["batch_size"]):
            batch = order[start : start + self.params["batch_size"]]
            self.optimizer.zero_grad()
            loss = self.loss(self.model(self.features[batch]), self.y[batch])
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach())
            batches += 1
            step += 1
        return total / max(batches, 1), step

    def _validation_loss(self, validation) -> float:
        import torch

        self.network.eval()
        with torch.no_grad():
            return float(
                self.loss(self.network(self.features[validation]), self.y[validation])
            )

    def predict_proba(self, rows):
        import torch

        self.network.eval()
        with torch.no_grad():
            logits = self.network(self.features[self._tensor_rows(rows)])
            return torch.softmax(logits, dim=1).cpu().numpy()

    def _tensor_rows(self, rows):
        import torch

        return torch.tensor(rows, dtype=torch.long, device=self.device)

    def _agree_to_stop(self, stop: bool) -> bool:
        """Stop only when rank 0 does, so that every rank runs the same epochs."""
        if self.job.world_size == 1:
            return stop
        import torch
        import torch.distributed as distributed

        flag = torch.tensor([int(stop)], device=self.device)
        distributed.broadcast(flag, src=0)
        return bool(flag.item())

    def close(self) -> None:
        if self.job.world_size > 1:
            import torch.distributed as distributed

            distributed.destroy_process_group()


def build_network(
    inputs: int,
    hidden_layers: Sequence[int],
    outputs: int,
    activation: str,
    dropout: float,
):
    """Return the ``torch.nn.Sequential`` both training and ``load_model`` build."""
    import torch

    activations = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "tanh": torch.nn.Tanh}
    layers: list = []
    width = inputs
    for hidden in hidden_layers:
        layers.append(torch.nn.Linear(width, hidden))
        layers.append(activations[activation]())
        if dropout > 0:
            layers.append(torch.nn.Dropout(dropout))
        width = hidden
    layers.append(torch.nn.Linear(width, outputs))
    return torch.nn.Sequential(*layers)


class TabularMLPModel:
    """A loaded tabular-mlp version: standardises features, then predicts."""

    def __init__(self, network, metadata: dict[str, Any]) -> None:
        self.network = network
        self.metadata = metadata
        self.feature_names: list[str] = metadata["feature_names"]
        self.classes: list[Any] = metadata["classes"]

    def predict_proba(self, features):
        """Return class probabilities, shape (rows, classes), for raw features."""
        import numpy as np
        import torch

        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.feature_names):
            raise ValueError(
                f"Expected features of shape [rows, {len(self.feature_names)}] "
                f"({', '.join(self.feature_names)}); got {list(features.shape)}."
            )
        standardise = self.metadata["standardise"]
        scaled = (features - np.asarray(standardise["mean"])) / np.asarray(
            standardise["std"]
        )
        with torch.no_grad():
            logits = self.network(torch.tensor(scaled, dtype=torch.float32))
            return torch.softmax(logits, dim=1).numpy()


def load_model(
    directory: str | Path, expected_sha256: str | None = None
) -> TabularMLPModel:
    """Verify an artifact directory against its manifest and load the model.

    Args:
        directory: the version's artifact directory.
        expected_sha256: the version's ``artifact_sha256``; when given, the
            weights file must have this hash as well.

    Raises:
        store.artifacts.ArtifactError: the manifest is missing, or a file is
            truncated or altered.
    """
    import torch

    from store.artifacts import ArtifactError, verify_manifest

    directory = Path(directory)
    manifest = verify_manifest(directory)
    for name in (WEIGHTS_FILE, METADATA_FILE):
        if name not in manifest.files:
            raise ArtifactError(f"The manifest in {directory} does not list {name}.")
    if expected_sha256 is not None and manifest.sha256(WEIGHTS_FILE) != expected_sha256:
        raise ArtifactError(
            f"{directory / WEIGHTS_FILE} has sha256 {manifest.sha256(WEIGHTS_FILE)}; "
            f"the version records {expected_sha256}."
        )
    metadata = json.loads((directory / METADATA_FILE).read_text())
    network = build_network(
        len(metadata["feature_names"]),
        metadata["layer_sizes"][1:-1],
        len(metadata["classes"]),
        metadata["activation"],
        metadata["dropout"],
    )
    state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    network.load_state_dict(state)
    network.eval()
    return TabularMLPModel(network, metadata)


# Data preparation.


def _encode_labels(target: Sequence[Any]):
    import numpy as np

    classes = sorted(set(target), key=lambda label: (type(label).__name__, label))
    if len(classes) < 2:
        raise DataError(
            f"The target has only one class ({classes[0]!r} in every row); a "
            "classifier "
            "needs at least two."
        )
    index = {label: position for position, label in enumerate(classes)}
    return classes, np.array([index[label] for label in target], dtype=np.int64)


def standardise(features, train_rows, names: Sequence[str]):
    """Return the training rows' mean and std, and every row standardised with them.

    A column with zero std keeps std 1, so it is only centred.

    Raises:
        DataError: a column's std overflows float64 (values beyond about
            1e154 square to infinity), or a standardised value is outside
            the float32 range that the network computes in.
    """
    import numpy as np

    with np.errstate(over="ignore", invalid="ignore"):
        mean = features[train_rows].mean(axis=0)
        std = features[train_rows].std(axis=0)
    for column, name in enumerate(names):
        if not (np.isfinite(mean[column]) and np.isfinite(std[column])):
            largest = float(np.max(np.abs(features[train_rows, column])))
            raise DataError(
                f"Feature {name!r} cannot be standardised: its standard deviation "
                f"over the training rows overflows float64 (its values reach "
                f"{largest:g} in magnitude). Rescale it, e.g. with another unit or "
                "a logarithm, so that its values stay far below 1e154."
            )
    std[std == 0] = 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        standardised = (features - mean) / std
    float32_max = float(np.finfo(np.float32).max)
    for column, name in enumerate(names):
        furthest = float(np.max(np.abs(standardised[:, column]), initial=0.0))
        if not furthest <= float32_max:
            raise DataError(
                f"Feature {name!r} cannot be standardised: a value lies "
                f"{furthest:g} standard deviations from its training mean, beyond "
                "the float32 range the network computes in. Rescale it, e.g. with "
                "another unit or a logarithm, or remove the outlier."
            )
    return mean, std, standardised


def _positive_index(classes: list[Any], positive_class: Any) -> int | None:
    if len(classes) != 2:
        return None
    if positive_class is None:
        return 1
    for position, label in enumerate(classes):
        if label == positive_class or str(label) == str(positive_class):
            return position
    raise DataError(
        f"positive_class {positive_class!r} is not a label of the target; the labels "
        f"are {classes}."
    )


def _sample_rows(count: int, max_rows: int | None, rng):
    import numpy as np

    if max_rows is None or count <= max_rows:
        return np.arange(count)
    return np.sort(rng.choice(count, size=max_rows, replace=False))


def _stratified_split(y, rows, fraction: float, rng):
    """Hold out ``fraction`` of each class; a class with one row stays in training."""
    import numpy as np

    train, validation = [], []
    for class_index in np.unique(y[rows]):
        members = rows[y[rows] == class_index]
        members = members[rng.permutation(len(members))]
        held_out = 0 if len(members) < 2 else max(1, round(fraction * len(members)))
        held_out = min(held_out, len(members) - 1)
        validation.append(members[:held_out])
        train.append(members[held_out:])
    train_rows = np.sort(np.concatenate(train))
    validation_rows = np.sort(np.concatenate(validation))
    if len(validation_rows) == 0:
        raise DataError(
            f"The data set has {len(rows)} rows, too few to hold out a validation "
            "split; "
            "add rows or raise validation_fraction."
        )
    return train_rows, validation_rows


def _device(job: TrainingJob):
    import torch

    if job.device != "cuda":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"The run was given GPUs (CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}) but torch "
            f"{torch.__version__} sees no CUDA device; install a CUDA build of torch."
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _wrap_distributed(network, job: TrainingJob, device):
    if job.world_size == 1:
        return network
    import torch.distributed as distributed
    from torch.nn.parallel import DistributedDataParallel

    if not distributed.is_initialized():
        distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(network, device_ids=device_ids)


def _metrics(job, y, validation_rows, probabilities, classes, positive_index):
    from plugins.metrics import classification_metrics

    sensitive = None
    if job.data.sensitive is not None:
        sensitive = [job.data.sensitive[row] for row in validation_rows]
    scores = probabilities[:, positive_index] if positive_index is not None else None
    return classification_metrics(
        y[validation_rows],
        probabilities.argmax(axis=1),
        scores,
        classes,
        positive_index,
        sensitive,
    )


def _write_artifact(job, network, classes, positive_index, mean, std) -> None:
    import torch

    buffer = io.BytesIO()
    state = {key: value.detach().cpu() for key, value in network.state_dict().items()}
    torch.save(state, buffer)
    job.write_artifact(WEIGHTS_FILE, buffer.getvalue())
    params = job.params
    metadata = {
        "format": METADATA_FORMAT,
        "recipe": TabularMLP.name,
        "feature_names": job.data.feature_names,
        "target_name": job.data.target_name,
        "classes": classes,
        "positive_class": classes[positive_index]
        if positive_index is not None
        else None,
        "layer_sizes": [
            len(job.data.feature_names),
            *params["hidden_layers"],
            len(classes),
        ],
        "activation": params["activation"],
        "dropout": params["dropout"],
        "standardise": {"mean": mean.tolist(), "std": std.tolist()},
        "params": params,
        "torch_version": torch.__version__,
    }
    job.write_artifact(METADATA_FILE, json.dumps(metadata, indent=2).encode())


# Parameter checks.


def _check_layers(value: Any) -> None:
    if not isinstance(value, list) or not 1 <= len(value) <= 16:
        raise PluginConfigError(
            "tabular-mlp: hidden_layers must be a list of 1 to 16 layer widths (got "
            f"{value!r})."
        )
    for width in value:
        if (
            isinstance(width, bool)
            or not isinstance(width, int)
            or not 1 <= width <= 65536
        ):
            raise PluginConfigError(
                "tabular-mlp: each hidden layer width must be an integer from 1 to "
                "65536 "
                f"(got {width!r} in {value!r})."
            )


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise PluginConfigError(
            f"tabular-mlp: {key} must be one of {', '.join(choices)} (got {value!r})."
        )


def _check_integer(key: str, value: Any, low: int) -> None:
    check_type("tabular-mlp", key, value, int)
    if value < low:
        raise PluginConfigError(
            f"tabular-mlp: {key} must be at least {low} (got {value!r})."
        )


def _check_number(
    key: str,
    value: Any,
    *,
    low: float,
    high: float,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    check_type("tabular-mlp", key, value, (int, float))
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above or math.isnan(value):
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise PluginConfigError(
            f"tabular-mlp: {key} must be in {left}{low}, {high}{right} (got {value!r})."
        )
