"""Helpers for drift tests: configs with one model, stores with its versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agent.config import AgentConfig, parse_config
from store import Store
from store import versions as version_rows

SHUTTLE_FEATURES = [f"f{index}" for index in range(1, 10)]
SHUTTLE_ROWS = 49_097
MODEL = "shuttle"


def make_config(
    directory: Path,
    *,
    monitoring: dict[str, Any] | None = None,
    drift: dict[str, Any] | None = None,
    notifiers: list[dict[str, Any]] | None = None,
    dataset: dict[str, Any] | None = None,
) -> AgentConfig:
    """Validate a config with one model, ``shuttle``, as agent.toml would."""
    raw = {
        "agent": {"name": "drift-test", "data_dir": "data"},
        "drift": drift or {},
        "models": [
            {
                "name": MODEL,
                "dataset": {
                    "plugin": "river",
                    "options": {"name": "Shuttle"},
                    **(dataset or {}),
                },
                "recipe": {"plugin": "tabular-mlp"},
                "monitoring": monitoring or {},
            }
        ],
        "notifiers": notifiers or [],
    }
    return parse_config(raw, directory / "agent.toml")


def add_version(store: Store, reference: dict[str, Any]) -> int:
    """Register the next version of ``shuttle``; return its number."""
    with store.write() as db:
        db.conn.execute(
            "INSERT OR IGNORE INTO models (name, created_at) VALUES (?, 0)", (MODEL,)
        )
        version = version_rows.insert_version(
            db,
            model=MODEL,
            run_id=None,
            artifact_path="unused",
            artifact_sha256="0" * 64,
            metrics={},
            lineage={"dataset": {"features": SHUTTLE_FEATURES}},
            reference=reference,
            verdicts=[],
        )
    return version["number"]


def deploy(store: Store, stable: int, canary: int | None = None) -> None:
    with store.write() as db:
        db.conn.execute(
            "INSERT INTO deployments (model, stable_version, canary_version, "
            "canary_weight, updated_at) VALUES (?, ?, ?, ?, 0) "
            "ON CONFLICT (model) DO UPDATE SET "
            "stable_version = excluded.stable_version, "
            "canary_version = excluded.canary_version",
            (MODEL, stable, canary, 0.1 if canary else 0.0),
        )


def shuffled(rows: np.ndarray, seed: int) -> np.ndarray:
    return rows[np.random.default_rng(seed).permutation(len(rows))]
