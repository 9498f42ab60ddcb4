"""The worker process on its own: under torchrun, and its command-line contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from training_helpers import REPO, write_csv

from agent.training.launcher import RunPaths, worker_command, worker_environment
from plugins.recipes.tabular_mlp import DEFAULTS
from store.artifacts import verify_manifest


def _spec(tmp_path: Path, csv_path: Path) -> tuple[Path, RunPaths]:
    paths = RunPaths.for_run(tmp_path / "data", "tiny", 1)
    paths.run_dir.mkdir(parents=True)
    spec = {
        "run_id": 1,
        "model": "tiny",
        "store_path": str(tmp_path / "data" / "store.db"),
        "dataset": {
            "plugin": "csv",
            "options": {"path": str(csv_path), "delimiter": ","},
            "features": None,
            "target": "y",
            "sensitive_attribute": None,
            "include_feedback": False,
            "regions": [],
        },
        "recipe": {"plugin": "tabular-mlp", "params": {**DEFAULTS, "max_epochs": 2}},
        "resources": {"gpus": 0, "budget_seconds": 60, "memory_limit_bytes": None},
        "artifact_dir": str(paths.artifact_dir),
        "events_path": str(paths.events),
        "result_path": str(paths.result),
    }
    paths.spec.write_text(json.dumps(spec))
    return paths.spec, paths


def test_command_uses_torchrun_for_several_gpus():
    spec = Path("/data/runs/3/spec.json")
    assert worker_command(spec, 1, "python") == [
        "python",
        "-m",
        "agent.training.worker",
        str(spec),
    ]
    assert worker_command(spec, 4, "python") == [
        "python",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=4",
        "-m",
        "agent.training.worker",
        str(spec),
    ]


def test_environment_pins_gpus():
    environment = worker_environment(
        {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 7, [1, 3]
    )
    assert environment["CUDA_VISIBLE_DEVICES"] == "1,3"
    assert environment["RIGDECK_RUN_ID"] == "7"
    assert environment["PATH"] == "/bin"
    assert worker_environment({}, 7, [])["CUDA_VISIBLE_DEVICES"] == ""


def test_worker_without_spec_prints_usage():
    result = subprocess.run(
        [sys.executable, "-m", "agent.training.worker"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "usage: python -m agent.training.worker SPEC.json" in result.stderr


@pytest.mark.slow
def test_two_processes_under_torchrun_write_one_result(tmp_path: Path):
    spec, paths = _spec(tmp_path, write_csv(tmp_path / "tiny.csv", rows=80))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "agent.training.worker",
        str(spec),
    ]
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command,
        cwd=paths.run_dir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(line) for line in paths.events.read_text().splitlines()]
    assert [event["event"] for event in events].count("data") == 1
    assert [event["epoch"] for event in events if event["event"] == "progress"] == [
        1,
        2,
    ]
    body = json.loads(paths.result.read_text())
    assert body["metrics"]["rows"] == 16
    assert body["metrics"]["epochs"] == 2
    assert (
        verify_manifest(paths.artifact_dir).sha256("model.pt")
        == body["artifact_sha256"]
    )
    assert "rank 1 of 2" in result.stderr
