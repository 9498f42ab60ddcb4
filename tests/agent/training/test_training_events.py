"""The events file: every line is strict JSON, whatever a recipe reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from agent.training.events import EventReader, EventWriter


def test_nested_non_finite_values_become_null(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.progress(
        epoch=1,
        losses={"train": math.nan, "parts": [1.5, math.inf, (-math.inf, 2)]},
    )
    writer.metric("per_class", {"a": math.nan, "b": 0.5})

    events = EventReader(path).read()
    assert len(events) == 2
    assert events[0]["losses"] == {"train": None, "parts": [1.5, None, [None, 2]]}
    assert events[0]["epoch"] == 1
    assert events[1]["name"] == "per_class"
    assert events[1]["value"] == {"a": None, "b": 0.5}


def test_numpy_values_are_converted(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.progress(
        loss=np.float32("nan"),
        step=np.int64(7),
        weights=np.array([0.5, np.inf]),
        nested={"scale": np.float64(2.0)},
    )

    event = EventReader(path).read()[0]
    assert event["loss"] is None
    assert event["step"] == 7
    assert event["weights"] == [0.5, None]
    assert event["nested"] == {"scale": 2.0}


def test_every_line_is_strict_json(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    EventWriter(path).progress(deep=[[{"x": math.nan}]])

    line = path.read_text().splitlines()[0]
    event = json.loads(line, parse_constant=_reject_constant)
    assert event["deep"] == [[{"x": None}]]


def _reject_constant(name: str):
    raise AssertionError(f"the events file contains the non-standard constant {name}")
