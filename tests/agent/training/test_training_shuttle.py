"""Acceptance: the sample configuration trains Shuttle on the CPU to version 1."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest
from harness import start_agent, wait_for
from training_helpers import REPO

from store.artifacts import verify_manifest

EXAMPLE = REPO / "examples" / "host-a.toml"


@pytest.mark.slow
def test_example_config_trains_shuttle(tmp_path: Path):
    directory = tmp_path / "example"
    directory.mkdir()
    config = directory / "agent.toml"
    shutil.copy(EXAMPLE, config)
    text = config.read_text()
    for setting in ("port = 7070", "port = 8080", 'data_dir = "data-a"'):
        assert setting in text
    text = text.replace("port = 7070", "port = 0").replace("port = 8080", "port = 0")
    config.write_text(text.replace('data_dir = "data-a"', 'data_dir = "data"'))
    agent = start_agent(config)
    try:
        operator = agent.client("operator")
        started = time.monotonic()
        run_id = operator.post("/api/v1/jobs/shuttle/trigger").json()["id"]

        def finished():
            run = operator.get(f"/api/v1/runs/{run_id}").json()
            return run if run["state"] not in ("queued", "running") else None

        run = wait_for(finished, timeout=120, what="the Shuttle run")
        elapsed = time.monotonic() - started
        assert run["state"] == "succeeded", run["error"]
        assert elapsed < 120
        version = operator.get("/api/v1/models/shuttle/versions/1").json()
        assert version["metrics"]["accuracy"] >= 0.99
        assert version["metrics"]["recall"] >= 0.95
        assert version["metrics"]["positive_class"] == "1"
        # The example trains on the first 34,000 rows and holds out the rest.
        assert version["metrics"]["rows"] + version["metrics"]["train_rows"] == 34_000
        assert version["gate_state"] == "passed"
        assert version["lineage"]["data_rows"] == 34_000
        manifest = verify_manifest(version["artifact_path"])
        weights = Path(version["artifact_path"]) / "model.pt"
        assert (
            manifest.sha256("model.pt")
            == hashlib.sha256(weights.read_bytes()).hexdigest()
        )
        assert manifest.sha256("model.pt") == version["artifact_sha256"]
        print(
            f"Shuttle: {elapsed:.1f} s trigger to succeeded, accuracy "
            f"{version['metrics']['accuracy']:.4f}, anomaly recall "
            f"{version['metrics']['recall']:.4f}"
        )
    finally:
        agent.stop()
