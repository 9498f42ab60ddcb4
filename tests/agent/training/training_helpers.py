"""Helpers for training tests: configs with [[models]], CSV files, a harness."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

# The fake plugins are imported as ``tests.plugins.fake_plugins``, so the
# repository root must be importable whether pytest runs as ``pytest`` or
# ``python -m pytest``.
REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.config import AgentConfig  # noqa: E402
from agent.training.manager import RunManager  # noqa: E402
from store import Store  # noqa: E402


def write_csv(path: Path, rows: int = 60, *, header: str = "x1,x2,y") -> Path:
    """A small CSV whose class y is 1 exactly when x1 > x2, so an MLP learns it."""
    lines = [header]
    for index in range(rows):
        x1, x2 = index % 7, (index * 3) % 5
        lines.append(f"{x1},{x2},{int(x1 > x2)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def model_toml(
    name: str,
    recipe: str,
    *,
    params: str = "{}",
    dataset: str = 'plugin = "counting"',
    schedule: str = "",
    resources: str = "",
    gates: str = "",
) -> str:
    """One [[models]] entry; ``dataset`` and the others are TOML lines."""
    return f"""
[[models]]
name = "{name}"
[models.dataset]
{dataset}
[models.recipe]
plugin = "{recipe}"
params = {params}
[models.schedule]
{schedule}
[models.resources]
{resources}
{gates}
"""


def write_agent_config(
    directory: Path, body: str, training: str = "cancel_grace_seconds = 2.0"
) -> Path:
    """Write agent.toml: ``training`` as its [training] section, then ``body``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "agent.toml"
    path.write_text(
        f"""
[agent]
name = "training-test"
region = "eu"
data_dir = "data"

[training]
{training}
{body}
"""
    )
    return path


@dataclass
class Harness:
    """A store, a config and a running RunManager, in this process."""

    config: AgentConfig
    store: Store
    runs: RunManager


def threshold_gate(metric: str, minimum: float) -> str:
    """A [[models.gates]] entry for the metric-threshold gate."""
    return (
        '[[models.gates]]\nplugin = "metric-threshold"\n'
        f'options = {{ metric = "{metric}", min = {minimum} }}'
    )


def csv_dataset(path: Path, target: str = "y") -> str:
    """[models.dataset] lines for the csv plugin reading ``path``."""
    return f'plugin = "csv"\noptions = {{ path = "{path}" }}\ntarget = "{target}"'
