"""Load a registered version for serving, through its training recipe.

A recipe serves when its class has a ``load_model(directory,
expected_sha256)`` classmethod or its module defines a function of that
name (``plugins.recipes.tabular_mlp.load_model`` does). The loaded object
must have ``feature_names``, ``classes`` and ``predict_proba(features)``
returning one probability row per input row. The recipe's loader verifies
the artifact against its manifest and the version's sha256, so a
truncated or altered file raises before any tensor is read.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import plugins


class LoadError(Exception):
    """A version that cannot be served; the message is stored as its load_error."""


class Predictor(Protocol):
    feature_names: list[str]
    classes: list[Any]

    def predict_proba(self, features: np.ndarray) -> Any: ...


@dataclass(frozen=True, eq=False)
class ServedVersion:
    """One loaded version: what the metadata shows and what answers requests."""

    model: str
    number: int
    recipe: str
    feature_names: tuple[str, ...]
    classes: tuple[Any, ...]
    label_datatype: str
    predictor: Predictor

    @property
    def feature_count(self) -> int:
        return len(self.feature_names)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Return float32 class probabilities of shape (rows, classes)."""
        return np.asarray(self.predictor.predict_proba(features), dtype=np.float32)


def load_version(version: dict[str, Any]) -> ServedVersion:
    """Verify and load a version row (``store.versions.get_version``).

    Raises:
        LoadError: the recipe is unknown or has no loader, the artifact
            fails verification, or loading it fails.
    """
    name = _recipe_name(version)
    load_model = _loader(name)
    try:
        predictor = load_model(version["artifact_path"], version["artifact_sha256"])
    except Exception as error:
        # Any failure here, a missing manifest or a torch error alike, means
        # the version cannot serve; the message is what operators see.
        raise LoadError(
            f"Version {version['number']} of model {version['model']!r} failed to "
            f"load: {type(error).__name__}: {error}"
        ) from error
    classes = tuple(predictor.classes)
    served = ServedVersion(
        model=version["model"],
        number=version["number"],
        recipe=name,
        feature_names=tuple(predictor.feature_names),
        classes=classes,
        label_datatype="INT64" if all(_is_int(c) for c in classes) else "BYTES",
        predictor=predictor,
    )
    _warm_up(served)
    return served


def _warm_up(served: ServedVersion) -> None:
    """Run one inference before the version takes traffic.

    The first forward pass of a freshly loaded torch model is usually slower
    than later ones (lazy allocation), and a canary's latency p95 over a few
    dozen requests would count it. A model that cannot answer one row
    never takes traffic either.
    """
    row = np.zeros((1, served.feature_count), dtype=np.float32)
    try:
        output = served.predict(row)
    except Exception as error:
        raise LoadError(
            f"Version {served.number} of model {served.model!r} loaded but failed "
            f"its warm-up inference on one row of zeros: "
            f"{type(error).__name__}: {error}"
        ) from error
    if output.shape != (1, len(served.classes)):
        raise LoadError(
            f"Version {served.number} of model {served.model!r} returned outputs of "
            f"shape {list(output.shape)} for one row; expected "
            f"[1, {len(served.classes)}], one probability per class."
        )


def _recipe_name(version: dict[str, Any]) -> str:
    recipe = version.get("lineage", {}).get("recipe", {})
    if isinstance(recipe, dict) and recipe.get("plugin"):
        return recipe["plugin"]
    # Versions registered without lineage (tools, tests) still name their
    # recipe in the tabular-mlp metadata file.
    metadata = Path(version["artifact_path"]) / "model.json"
    try:
        return json.loads(metadata.read_text())["recipe"]
    except (OSError, ValueError, KeyError, TypeError):
        raise LoadError(
            f"Version {version['number']} of model {version['model']!r} names no "
            "recipe in its lineage or model.json, so no loader can be chosen."
        ) from None


def _loader(recipe_name: str):
    try:
        recipe = plugins.load("recipe", recipe_name)
    except plugins.PluginError as error:
        raise LoadError(str(error)) from error
    hook = getattr(recipe, "load_model", None)
    if hook is None:
        hook = getattr(sys.modules[recipe.__module__], "load_model", None)
    if not callable(hook):
        raise LoadError(
            f"The recipe {recipe_name!r} cannot be served: neither its class nor "
            "its module defines load_model(directory, expected_sha256)."
        )
    return hook


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
