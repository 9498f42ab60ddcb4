"""Replay a labelled data set against a serving worker, with feedback.

``rigdeck-agent replay`` uses this for demo and benchmark traffic. Each
batch is sent to ``POST /v2/models/{model}/infer`` with a request id of
its own, then its true labels go to ``POST /v2/models/{model}/feedback``
under the same id, so the worker stores one label per logged row (row N
of the batch under ``ID/N``). A shift adds an offset to one feature from
a given row on, which simulates a sensor that drifts.
"""

from __future__ import annotations

import csv
import math
import random
import re
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from agent.errors import AgentError

# FEATURE:OFFSET@ROW, where OFFSET is a signed number, optionally with the
# suffix "std" to scale it by the feature's standard deviation.
SHIFT_PATTERN = re.compile(
    r"^(?P<feature>[^:@\s]+):(?P<offset>[+-]\d+(?:\.\d+)?)(?P<std>std)?@(?P<row>\d+)$"
)
SHIFT_SYNTAX = "FEATURE:[+|-]NUMBER[std]@ROW, e.g. f1:+0.5std@3000 or f1:-12@0"


class ReplayError(AgentError):
    """A replay that cannot start or cannot go on: bad input or no server."""


@dataclass(frozen=True)
class Shift:
    """An offset added to one feature of every row from ``from_row`` on.

    ``offset`` is in the feature's units, unless ``in_std`` is set: then it
    is a multiple of the feature's population standard deviation over the
    whole source data set.
    """

    feature: str
    offset: float
    in_std: bool
    from_row: int

    @classmethod
    def parse(cls, text: str) -> Shift:
        match = SHIFT_PATTERN.match(text.strip())
        if match is None:
            raise ReplayError(f"Invalid shift {text!r}; the syntax is {SHIFT_SYNTAX}.")
        return cls(
            feature=match["feature"],
            offset=float(match["offset"]),
            in_std=match["std"] is not None,
            from_row=int(match["row"]),
        )

    def describe(self) -> str:
        unit = " std" if self.in_std else ""
        return f"{self.feature} {self.offset:+g}{unit} from row {self.from_row}"


@dataclass
class LabelledRows:
    """A data set in the served model's feature order, with its labels."""

    feature_names: list[str]
    rows: list[list[float]]
    labels: list[str]

    def apply(self, shift: Shift, reference: LabelledRows) -> float:
        """Add ``shift`` to the rows it covers; return the offset in feature units.

        A shift in std is scaled by the feature's population standard
        deviation in ``reference``, the whole source data set.
        """
        if shift.feature not in self.feature_names:
            raise ReplayError(
                f"The shift names the feature {shift.feature!r}, which the model "
                f"does not take; its features are {', '.join(self.feature_names)}."
            )
        column = self.feature_names.index(shift.feature)
        offset = shift.offset
        if shift.in_std:
            offset *= statistics.pstdev(row[column] for row in reference.rows)
        for row in self.rows[shift.from_row :]:
            row[column] += offset
        return offset


@dataclass
class Window:
    """Counts over one progress window of served rows."""

    rows: int = 0
    errors: int = 0
    versions: Counter = field(default_factory=Counter)

    def to_json(self, sent_rows: int, elapsed_seconds: float) -> dict:
        """Return the window as one JSON object, for ``--json`` output."""
        return {
            "rows_sent": sent_rows,
            "rows": self.rows,
            "errors": self.errors,
            "error_rate": self.errors / self.rows if self.rows else 0.0,
            "versions": {str(v): count for v, count in sorted(self.versions.items())},
            "elapsed_seconds": round(elapsed_seconds, 3),
        }

    def line(self, sent_rows: int, elapsed_seconds: float) -> str:
        rate = self.errors / self.rows if self.rows else 0.0
        versions = " ".join(
            f"v{version}:{count}" for version, count in sorted(self.versions.items())
        )
        return (
            f"rows {sent_rows:>7}  error_rate {rate:6.2%} ({self.errors}/{self.rows})"
            f"  versions {versions}  elapsed {elapsed_seconds:6.1f} s"
        )


def load_source(
    source: str, feature_names: Sequence[str], target: str | None
) -> LabelledRows:
    """Read ``source``: a data set shipped with river (``Shuttle``) or a CSV path.

    Raises:
        ReplayError: the source is unknown, or lacks a feature or the target.
    """
    if Path(source).suffix.lower() == ".csv" or Path(source).exists():
        records, default_target = _csv_records(Path(source)), None
    else:
        records, default_target = _river_records(source)
    target = target or default_target
    rows: list[list[float]] = []
    labels: list[str] = []
    for index, record in enumerate(records):
        if target is None:
            target = _only_extra_column(record, feature_names, source)
        missing = [name for name in (*feature_names, target) if name not in record]
        if missing:
            raise ReplayError(
                f"Row {index} of {source} has no column {missing[0]!r}; the model "
                f"takes {', '.join(feature_names)} and the target is {target!r}."
            )
        rows.append([_number(record[name], index, name) for name in feature_names])
        labels.append(_label(record[target]))
    if not rows:
        raise ReplayError(f"The source {source} has no rows.")
    return LabelledRows(list(feature_names), rows, labels)


def _river_records(name: str) -> tuple[Iterator[dict], str]:
    from plugins.datasets.river_dataset import SHIPPED, RiverDataset

    if name not in SHIPPED:
        raise ReplayError(
            f"Unknown source {name!r}: it is neither a CSV file nor a data set "
            f"shipped with river 0.26 ({', '.join(SHIPPED)})."
        )
    dataset = RiverDataset({"name": name})
    return iter(dataset.rows()), dataset.default_target()


def _csv_records(path: Path) -> Iterator[dict]:
    try:
        with path.open(newline="") as file:
            yield from csv.DictReader(file)
    except OSError as error:
        raise ReplayError(f"Cannot read the CSV source {path}: {error}.") from error


def _only_extra_column(record: dict, feature_names: Sequence[str], source: str) -> str:
    extra = [name for name in record if name not in feature_names]
    if len(extra) != 1:
        raise ReplayError(
            f"Cannot tell the target column of {source}: the columns besides the "
            f"model's features are {extra}. Name it with --target."
        )
    return extra[0]


def _number(value: object, index: int, name: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ReplayError(f"Row {index}, column {name!r}: {value!r} is not a number.")
    return number


def _label(value: object) -> str:
    # The worker stores labels as text with integers as digits, so 1, 1.0,
    # "1" and True are the same class; compare predictions the same way.
    if isinstance(value, bool):
        return str(int(value))
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(value)


class Replayer:
    """Send rows to one model at a steady rate and post their labels.

    Args:
        client: an ``httpx.Client`` whose base URL is the serving worker.
        model: the served model's name.
        rate_rows_per_second: rows sent per second, on average.
        batch_rows: rows per inference request.
        window_rows: rows per progress line.
    """

    def __init__(
        self,
        client: httpx.Client,
        model: str,
        rate_rows_per_second: float,
        batch_rows: int = 50,
        window_rows: int = 500,
    ) -> None:
        self.client = client
        self.model = model
        self.rate_rows_per_second = rate_rows_per_second
        self.batch_rows = batch_rows
        self.window_rows = window_rows
        self.run_id = uuid.uuid4().hex[:12]

    def feature_names(self) -> list[str]:
        """Read the model's feature names from its metadata."""
        response = self._request("GET", f"/v2/models/{self.model}")
        return list(response.json()["parameters"]["feature_names"])

    def replay(
        self, data: LabelledRows, emit: Callable[[Window, int, float], None]
    ) -> Window:
        """Send every row of ``data``; call ``emit`` once per window.

        ``emit`` gets the window's counts, the rows sent so far and the
        seconds since the start.

        Returns the counts over all rows.
        """
        total = Window()
        window = Window()
        started = time.monotonic()
        for start in range(0, len(data.rows), self.batch_rows):
            due = started + start / self.rate_rows_per_second
            time.sleep(max(0.0, due - time.monotonic()))
            batch = data.rows[start : start + self.batch_rows]
            labels = data.labels[start : start + self.batch_rows]
            version, predicted = self._infer(f"replay-{self.run_id}-{start}", batch)
            self._feedback(f"replay-{self.run_id}-{start}", labels)
            errors = sum(p != t for p, t in zip(predicted, labels, strict=True))
            for counts in (window, total):
                counts.rows += len(batch)
                counts.errors += errors
                counts.versions[version] += len(batch)
            if window.rows >= self.window_rows:
                emit(window, start + len(batch), time.monotonic() - started)
                window = Window()
        if window.rows:
            emit(window, len(data.rows), time.monotonic() - started)
        return total

    def _infer(
        self, request_id: str, batch: list[list[float]]
    ) -> tuple[str, list[str]]:
        body = {
            "id": request_id,
            "inputs": [
                {
                    "name": "features",
                    "datatype": "FP32",
                    "shape": [len(batch), len(batch[0])],
                    "data": batch,
                }
            ],
            "outputs": [{"name": "label"}],
        }
        answer = self._request("POST", f"/v2/models/{self.model}/infer", body).json()
        labels = next(o for o in answer["outputs"] if o["name"] == "label")["data"]
        return str(answer["model_version"]), [_label(label) for label in labels]

    def _feedback(self, request_id: str, labels: list[str]) -> None:
        body = {"id": request_id, "labels": labels}
        self._request("POST", f"/v2/models/{self.model}/feedback", body)

    def _request(self, method: str, path: str, body: dict | None = None):
        try:
            response = self.client.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise ReplayError(
                f"{method} {self.client.base_url}{path} failed: {error}. Check that "
                "the agent serves this model (GET /api/v1/serving) and the URL."
            ) from error
        if response.status_code == 404 and method == "GET":
            raise ReplayError(
                f"The serving worker at {self.client.base_url} does not serve a "
                f"model named {self.model!r}; check the name and its deployment."
            )
        if response.status_code >= 400:
            raise ReplayError(
                f"{method} {path} returned {response.status_code}: {response.text}"
            )
        return response


def shuffled(data: LabelledRows, seed: int | None, skip_rows: int, limit: int | None):
    """Shuffle ``data`` with ``seed`` (None keeps the order), then slice it."""
    order = list(range(len(data.rows)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    end = None if limit is None else skip_rows + limit
    order = order[skip_rows:end]
    if not order:
        raise ReplayError(
            f"No rows left to send: the source has {len(data.rows)} rows and "
            f"--skip is {skip_rows}."
        )
    return LabelledRows(
        data.feature_names,
        [list(data.rows[i]) for i in order],
        [data.labels[i] for i in order],
    )
