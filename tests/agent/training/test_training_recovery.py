"""Startup recovery: runs left active by a killed agent, and their orphaned workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
from harness import wait_for
from training_helpers import model_toml

from agent.training.launcher import WORKER_MODULE, RunPaths, group_exists
from agent.training.recovery import recover
from store import alerts
from store import runs as run_rows

# A stand-in worker: its command line names the worker module and a spec
# under the runs directory, as a real worker's does, and it starts a
# grandchild in its process group, as torchrun does.
FAKE_WORKER = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
    "time.sleep(600)"
)


def _spawn_fake_worker(spec: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", FAKE_WORKER, WORKER_MODULE, str(spec)],
        start_new_session=True,
    )
    # Reap it as soon as it dies, as init reaps a real orphan.
    threading.Thread(target=process.wait, daemon=True).start()
    return process


def _children_of_group(pgid: int) -> list[int]:
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.info["pid"]) == pgid:
                found.append(process.info["pid"])
        except ProcessLookupError:
            continue
    return found


def _running_run(built, model: str) -> int:
    run = built.runs.trigger(model, actor="alice")
    with built.store.write() as db:
        run_rows.transition(
            db, run["id"], "running", started_at=1.0, pid=999_999, pgid=999_999
        )
    return run["id"]


def test_running_run_is_interrupted_and_orphans_end(harness):
    built = harness(
        model_toml("slow", "slow") + model_toml("other", "slow"), start=False
    )
    running_id = _running_run(built, "slow")
    queued_id = built.runs.trigger("other", actor="alice")["id"]
    paths = RunPaths.for_run(built.config.data_dir, "slow", running_id)
    paths.run_dir.mkdir(parents=True)
    paths.artifact_dir.mkdir(parents=True)
    (paths.artifact_dir / "model.pt").write_bytes(b"half")
    worker = _spawn_fake_worker(paths.spec)
    wait_for(
        lambda: len(_children_of_group(worker.pid)) == 2,
        timeout=10,
        what="the grandchild",
    )
    with built.store.write() as db:
        run_rows.update_run(db, running_id, pid=worker.pid, pgid=worker.pid)

    interrupted = recover(built.store, built.config)

    assert interrupted == [running_id, queued_id]
    running = run_rows.get_run(built.store.db, running_id)
    assert running["state"] == "interrupted"
    assert running["error"] == (
        "The agent stopped (killed or crashed) while this run was running; it was "
        "marked interrupted when the agent started again."
    )
    assert running["finished_at"] is not None
    queued = run_rows.get_run(built.store.db, queued_id)
    assert queued["state"] == "interrupted"
    assert "while this run was queued" in queued["error"]
    wait_for(
        lambda: not group_exists(worker.pid),
        timeout=10,
        what="the orphaned group to end",
    )
    assert worker.returncode == -signal.SIGTERM
    assert not paths.artifact_dir.exists()
    assert "marked interrupted" in paths.log.read_text()
    kinds = sorted(
        a["source"]
        for a in alerts.list_alerts(built.store.db)
        if a["kind"] == "run_interrupted"
    )
    assert kinds == [f"run/{running_id}", f"run/{queued_id}"]


def test_worker_without_run_row_is_ended(harness):
    built = harness(model_toml("slow", "slow"), start=False)
    spec = built.config.data_dir / "runs" / "42" / "spec.json"
    worker = _spawn_fake_worker(spec)

    assert recover(built.store, built.config) == []
    wait_for(
        lambda: not group_exists(worker.pid), timeout=10, what="the stray worker to end"
    )
    assert worker.returncode == -signal.SIGTERM


def test_other_data_dirs_workers_are_left_alone(harness, tmp_path: Path):
    built = harness(model_toml("slow", "slow"), start=False)
    elsewhere = _spawn_fake_worker(
        tmp_path / "other-agent" / "data" / "runs" / "1" / "spec.json"
    )
    try:
        recover(built.store, built.config)
        assert elsewhere.poll() is None
        assert group_exists(elsewhere.pid)
    finally:
        os.killpg(elsewhere.pid, signal.SIGKILL)


def test_clean_store_recovers_nothing(harness):
    built = harness(model_toml("slow", "slow"), start=False)
    assert recover(built.store, built.config) == []
    assert alerts.list_alerts(built.store.db) == []
