"""The events file a worker appends to and the agent follows.

One JSON object per line, with an ``event`` key:

- ``data``: ``sha256``, ``rows``, ``feedback_rows`` once the data set is loaded.
- ``progress``: what the recipe reported, e.g. ``epoch``, ``step``, ``loss``.
- ``metric``: ``name`` and ``value``, reported while training.
- ``error``: ``summary``, the one-line reason a run failed.

A file rather than a pipe, so that the worker does not depend on the
agent staying alive, and torchrun's workers inherit it by path.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class EventWriter:
    """Appends events; used by the worker (rank 0 only)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, event: str, **values: Any) -> None:
        line = json.dumps(
            {"event": event, "ts": time.time(), **_finite(values)},
            allow_nan=False,
            default=str,
        )
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def progress(self, **values: Any) -> None:
        self.write("progress", **values)

    def metric(self, name: str, value: float) -> None:
        self.write("metric", name=name, value=value)


class EventReader:
    """Reads the complete lines added since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.invalid_lines = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        events = []
        for line in chunk[: end + 1].splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                self.invalid_lines += 1
                logger.warning("skipped an invalid line in %s", self.path)
                continue
            if isinstance(event, dict):
                events.append(event)
        return events


def _finite(value: Any) -> Any:
    """Replace non-finite floats with None at any depth, so every line is valid JSON.

    numpy and torch values become Python ones through ``tolist()`` (a scalar
    becomes a number, an array a list), tuples become lists and keys become
    strings. Other values that JSON cannot hold are written as their ``str()``.
    """
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
