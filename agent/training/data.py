"""Load a dataset plugin's rows into ``TabularData``, checking every value.

Runs in the training worker. Features must be numbers (ints, floats,
bools, or strings that parse as numbers) and finite; the target and the
sensitive attribute must be present. Every error names the data set, the
row and the column.

The content hash is the sha256 of one JSON header line (feature names,
target, sensitive attribute) followed by one JSON line per row. Each row
line has the converted feature values, the label and the sensitive value,
in the order the rows were read. So the hash changes when any value the
run trained on changes, whatever the file format.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from plugins import DataError, Dataset, TabularData

logger = logging.getLogger(__name__)

# Labels that read as whole numbers ("1", " 1 ", "1.0", 1.0) become ints,
# so a CSV target, a SQLite target and a feedback label agree.
_INTEGER = re.compile(r"^[+-]?\d+$")
_INTEGRAL_FLOAT = re.compile(r"^[+-]?\d+\.0*$")


def load_tabular(
    dataset: Dataset,
    *,
    features: list[str] | None,
    target: str,
    sensitive: str | None,
    feedback: Callable[[list[str]], Iterable[Mapping[str, Any]]] | None = None,
) -> TabularData:
    """Read every row of ``dataset`` (then the feedback rows) into TabularData.

    ``feedback`` gets the resolved feature names and returns extra rows,
    e.g. ``feedback_rows`` bound to the store and model.

    Raises:
        DataError: no rows, a missing column, or a value that is not usable.
    """
    source = dataset.describe()
    builder: _Builder | None = None
    for number, row in enumerate(dataset.rows(), start=1):
        if builder is None:
            names = _resolve_features(
                features or dataset.default_features(), row, target, sensitive
            )
            builder = _Builder(names, target, sensitive)
        builder.add(row, number, source)
    if builder is None:
        raise DataError(f"The {source} yielded no rows; a run needs at least two.")
    dataset_rows = builder.count
    if feedback is not None:
        for number, row in enumerate(feedback(builder.features), start=1):
            builder.add(row, number, "serving feedback")
    return builder.build(feedback_rows=builder.count - dataset_rows)


def feedback_rows(
    store_path: Path,
    model: str,
    features: list[str],
    sensitive: str | None,
    target: str,
) -> list[dict[str, Any]]:
    """Return the model's labelled feedback as rows, oldest first.

    A row joins ``feedback`` to ``predictions`` on the request id. The
    prediction's ``features_json`` may be an object keyed by feature name
    or a list in feature order. Rows that lack a feature or the sensitive
    attribute are skipped and counted in the run log.
    """
    # The serving worker stores features_json as a list in feature order
    # (store.predictions). An object keyed by feature name is accepted too,
    # because it is the only shape that can carry a sensitive attribute.
    if not store_path.exists():
        return []
    conn = sqlite3.connect(f"{store_path.as_uri()}?mode=ro", uri=True)
    try:
        selected = conn.execute(
            "SELECT p.features_json, f.label FROM feedback f JOIN predictions p "
            "ON p.request_id = f.request_id AND p.model = f.model "
            "WHERE f.model = ? ORDER BY f.id",
            (model,),
        ).fetchall()
    finally:
        conn.close()
    rows, skipped = [], 0
    for features_json, label in selected:
        row = _feedback_row(json.loads(features_json), features, sensitive)
        if row is None:
            skipped += 1
            continue
        row[target] = label
        rows.append(row)
    if skipped:
        logger.warning(
            "skipped %s feedback rows that lack a feature of model %s", skipped, model
        )
    return rows


class _Builder:
    def __init__(self, features: list[str], target: str, sensitive: str | None) -> None:
        self.features = features
        self.target = target
        self.sensitive = sensitive
        self.values: list[list[float]] = []
        self.labels: list[Any] = []
        self.groups: list[Any] = []
        self.hash = hashlib.sha256()
        header = {"features": features, "target": target, "sensitive": sensitive}
        self.hash.update(json.dumps(header, sort_keys=True).encode() + b"\n")

    @property
    def count(self) -> int:
        return len(self.labels)

    def add(self, row: Mapping[str, Any], number: int, source: str) -> None:
        values = [
            _number(_column(row, name, number, source), name, number, source)
            for name in self.features
        ]
        label = _label(
            _column(row, self.target, number, source), self.target, number, source
        )
        group = None
        if self.sensitive is not None:
            group = _category(
                _column(row, self.sensitive, number, source),
                self.sensitive,
                number,
                source,
            )
            self.groups.append(group)
        self.values.append(values)
        self.labels.append(label)
        self.hash.update(json.dumps([*values, label, group]).encode() + b"\n")

    def build(self, feedback_rows: int) -> TabularData:
        return TabularData(
            feature_names=self.features,
            features=np.asarray(self.values, dtype=np.float64).reshape(
                self.count, len(self.features)
            ),
            target_name=self.target,
            target=self.labels,
            sensitive_name=self.sensitive,
            sensitive=self.groups if self.sensitive is not None else None,
            sha256=self.hash.hexdigest(),
            feedback_rows=feedback_rows,
        )


def _resolve_features(
    configured: list[str] | None,
    first_row: Mapping[str, Any],
    target: str,
    sensitive: str | None,
) -> list[str]:
    if configured:
        return list(configured)
    names = [name for name in first_row if name not in (target, sensitive)]
    if not names:
        raise DataError(
            f"The first row has no column besides the target {target!r}; there is "
            "nothing "
            "to train on."
        )
    return names


def _column(row: Mapping[str, Any], name: str, number: int, source: str) -> Any:
    if name not in row:
        columns = ", ".join(str(column) for column in row)
        raise DataError(
            f"Row {number} of the {source} has no column {name!r}; its columns are: "
            f"{columns}. Fix features, target or sensitive_attribute in "
            "[models.dataset]."
        )
    return row[name]


def _number(value: Any, name: str, number: int, source: str) -> float:
    if isinstance(value, bool | int | float):
        result = float(value)
    elif isinstance(value, str) and value.strip():
        try:
            result = float(value.strip())
        except ValueError:
            raise DataError(
                f"Row {number} of the {source}: feature {name!r} is {value!r}, not a "
                "number. "
                "Features must be numeric; encode categories as numbers first."
            ) from None
    elif value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"Row {number} of the {source}: feature {name!r} is empty.")
    else:
        raise DataError(
            f"Row {number} of the {source}: feature {name!r} is a "
            f"{type(value).__name__} "
            f"({value!r}), not a number."
        )
    if not math.isfinite(result):
        raise DataError(
            f"Row {number} of the {source}: feature {name!r} is {value!r}, not finite."
        )
    return result


def _label(value: Any, name: str, number: int, source: str) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"Row {number} of the {source}: the target {name!r} is empty.")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.match(text):
            return int(text)
        if _INTEGRAL_FLOAT.match(text):
            return int(float(text))
        return text
    if isinstance(value, int | float | str):
        return value
    raise DataError(
        f"Row {number} of the {source}: the target {name!r} is a "
        f"{type(value).__name__} "
        f"({value!r}); use a number or a string."
    )


def _category(value: Any, name: str, number: int, source: str) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(
            f"Row {number} of the {source}: the sensitive attribute {name!r} is empty."
        )
    return _label(value, name, number, source)


def _feedback_row(
    features_value: Any, features: list[str], sensitive: str | None
) -> dict[str, Any] | None:
    if isinstance(features_value, list):
        if len(features_value) != len(features) or sensitive is not None:
            return None
        return dict(zip(features, features_value, strict=True))
    if isinstance(features_value, dict):
        needed = [*features, *([sensitive] if sensitive else [])]
        if any(name not in features_value for name in needed):
            return None
        return {name: features_value[name] for name in needed}
    return None
