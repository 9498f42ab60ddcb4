"""The plugin interface: datasets, training recipes and release gates.

Plugins are classes registered under the entry-point group
``rigdeck.plugins`` with the name ``KIND.NAME``, for example
``recipe.tabular-mlp``. docs/plugins.md shows how to write one.

Exceptions::

    PluginError
     ├── PluginNotFoundError   no plugin of that kind and name is installed
     ├── PluginConfigError     invalid options or parameters in agent.toml
     └── DataError             a data set that cannot be used for training

This module imports neither numpy, torch nor river, because the agent's
control process loads it to validate configuration and to run gates.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import numpy as np


class PluginError(Exception):
    """Base class of every error a plugin raises on purpose."""


class PluginNotFoundError(PluginError):
    def __init__(self, kind: str, name: str, installed: Sequence[str]) -> None:
        names = ", ".join(sorted(installed)) or "none"
        super().__init__(
            f"No {kind} plugin named {name!r} is installed. Installed {kind} "
            f"plugins: {names}."
        )
        self.kind = kind
        self.name = name
        self.installed = list(installed)


class PluginConfigError(PluginError):
    """Invalid options or parameters; the message names the key and the value."""


class DataError(PluginError):
    """A data set that cannot be used: missing columns, bad values, no rows."""


# Datasets.


class Dataset(abc.ABC):
    """A source of rows, each a mapping from column name to value.

    Subclasses set ``name``, may override ``validate_options`` to check and
    normalise their options when agent.toml loads, and implement ``rows``.
    ``rows`` runs in the training subprocess, so it may import heavy
    libraries. The class body and ``validate_options`` run in the agent's
    control process, so they must not.

    Args:
        options: the value ``validate_options`` returned.
    """

    kind: ClassVar[str] = "dataset"
    name: ClassVar[str]

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    @classmethod
    def validate_options(
        cls, options: Mapping[str, Any], *, base_dir: Path
    ) -> dict[str, Any]:
        """Check options and return them normalised; raise PluginConfigError.

        Args:
            options: ``[models.dataset] options`` from agent.toml.
            base_dir: the directory of agent.toml, for relative paths.
        """
        return dict(options)

    @classmethod
    def input_files(cls, options: Mapping[str, Any]) -> dict[str, Path]:
        """Return the files the data set reads, by option key; default none.

        The agent checks that each exists when it loads agent.toml, so a
        wrong path fails at startup, not at the first scheduled run.
        ``options`` are the ones ``validate_options`` returned.
        """
        return {}

    def default_features(self) -> list[str] | None:
        """Feature columns used when agent.toml names none; None: all but the target."""
        return None

    def default_target(self) -> str | None:
        """Target column used when agent.toml names none."""
        return None

    def describe(self) -> str:
        """Return a short description of the data set for logs and error messages."""
        return f"{self.name} dataset"

    @abc.abstractmethod
    def rows(self) -> Iterator[Mapping[str, Any]]:
        """Yield rows in a stable order, so that the content hash is reproducible."""


@dataclass(frozen=True)
class TabularData:
    """Rows loaded for training, with numeric features and raw labels.

    Attributes:
        feature_names: the feature columns, in the order of ``features``.
        features: float64 array of shape (rows, features); every value finite.
        target_name: the target column.
        target: one label per row. Integer-like labels are ints.
        sensitive_name: the column the fairness gap is computed over, if any.
        sensitive: that column's value per row, or None.
        sha256: content hash of the rows as loaded (see docs/plugins.md).
        feedback_rows: how many rows came from serving feedback.
    """

    feature_names: list[str]
    features: np.ndarray
    target_name: str
    target: list[Any]
    sensitive_name: str | None
    sensitive: list[Any] | None
    sha256: str
    feedback_rows: int = 0

    @property
    def row_count(self) -> int:
        return len(self.target)


# Recipes.


class Reporter(Protocol):
    """Sink for the progress and metrics a recipe reports while it trains."""

    def progress(self, **values: Any) -> None: ...

    def metric(self, name: str, value: float) -> None: ...


@dataclass
class TrainingJob:
    """Everything a recipe gets for one run.

    Attributes:
        run_id: the run's id in the agent's store.
        model: the model's name.
        data: the loaded data set.
        params: the value the recipe's ``validate_params`` returned.
        device: ``"cuda"`` when the run was given GPUs, else ``"cpu"``.
        artifact_dir: where to write the artifact files (rank 0 only).
        reporter: progress and metric sink; call it from rank 0 only.
        rank: this process's rank under torchrun; 0 otherwise.
        world_size: the number of processes; 1 unless run under torchrun.
    """

    run_id: int
    model: str
    data: TabularData
    params: dict[str, Any]
    device: str
    artifact_dir: Path
    reporter: Reporter
    rank: int = 0
    world_size: int = 1
    written: list[str] = field(default_factory=list)

    def write_artifact(self, name: str, data: bytes) -> str:
        """Write one artifact file atomically and return its sha256.

        The agent seals every file written this way in ``manifest.json``
        after ``train`` returns, so write each file through here.
        """
        from store.artifacts import write_atomic

        written = write_atomic(self.artifact_dir / name, data)
        if name not in self.written:
            self.written.append(name)
        return written.sha256

    def progress(self, **values: Any) -> None:
        """Report progress, e.g. ``progress(epoch=3, step=120, loss=0.21)``."""
        if self.rank == 0:
            self.reporter.progress(**values)

    def metric(self, name: str, value: float) -> None:
        """Report one metric as training goes, e.g. the validation loss."""
        if self.rank == 0:
            self.reporter.metric(name, value)


@dataclass(frozen=True)
class TrainingResult:
    """The result of ``Recipe.train``.

    Attributes:
        metrics: held-out metrics; scalar values, or a mapping of scalars
            for per-class values such as ``recall_by_class``.
        weights_file: the artifact file holding the tensors; its sha256 is
            the version's ``artifact_sha256``.
        reference_rows: indices into ``data`` of the rows the model was fitted
            on; the agent computes the drift reference statistics over them.
            None means every row.
    """

    metrics: dict[str, Any]
    weights_file: str
    reference_rows: Sequence[int] | None = None


class Recipe(abc.ABC):
    """A way to train a model from tabular data.

    ``validate_params`` runs in the agent's control process when agent.toml
    loads and must not import torch. ``train`` runs in the training
    subprocess (under torchrun when the run has more than one GPU).
    """

    kind: ClassVar[str] = "recipe"
    name: ClassVar[str]

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check parameters and return them with defaults filled in."""
        return dict(params)

    @abc.abstractmethod
    def train(self, job: TrainingJob) -> TrainingResult:
        """Train, write artifact files with ``job.write_artifact``, return metrics."""


# Gates.


@dataclass(frozen=True)
class Candidate:
    """The version a gate judges, before it is registered."""

    model: str
    run_id: int
    metrics: dict[str, Any]
    lineage: dict[str, Any]


@dataclass(frozen=True)
class ProductionVersion:
    """The version serving as stable (``deployments.stable_version``)."""

    number: int
    metrics: dict[str, Any]
    lineage: dict[str, Any]


@dataclass(frozen=True)
class GateContext:
    agent_region: str
    production: ProductionVersion | None


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


class Gate(abc.ABC):
    """A check a version must pass before it may be released.

    Gates run in the agent's control process, so they must be quick and
    must not import torch.
    """

    kind: ClassVar[str] = "gate"
    name: ClassVar[str]

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        return dict(options)

    @abc.abstractmethod
    def evaluate(self, candidate: Candidate, context: GateContext) -> GateVerdict:
        """Return the verdict and a reason a person can act on."""


def metric_value(metrics: Mapping[str, Any], path: str) -> float | None:
    """Look up a metric by name; ``recall_by_class.1`` reads a per-class value.

    Returns None when the metric is absent or not a finite number.
    """
    value: Any = metrics
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
