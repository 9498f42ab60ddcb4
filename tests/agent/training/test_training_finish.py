"""How the run manager ends runs: exit texts, errors while ending, slow registration."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
from pathlib import Path

import numpy as np
import psutil
import pytest
from harness import wait_for
from training_helpers import csv_dataset, model_toml

from agent.training.launcher import RunPaths
from agent.training.outcomes import exit_text
from store import audit
from store import runs as run_rows
from store import versions as version_rows
from tests.agent.training import training_plugins

FINAL = ("succeeded", "failed", "cancelled", "timed_out", "interrupted")
TWO_SLOTS = "cancel_grace_seconds = 2.0\nmax_concurrent_runs = 2"


def _wait_final(built, run_id: int, timeout: float = 60) -> dict:
    def finished():
        run = run_rows.get_run(built.store.db, run_id)
        return run if run["state"] in FINAL else None

    return wait_for(finished, timeout=timeout, what=f"run {run_id} to finish")


def _wait_progress(built, run_id: int) -> dict:
    def progressing():
        run = run_rows.get_run(built.store.db, run_id)
        return run if run["state"] == "running" and run["progress"] else None

    return wait_for(progressing, timeout=30, what=f"progress of run {run_id}")


def _log(run: dict) -> str:
    return Path(run["log_path"]).read_text()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _tick(built) -> None:
    """Run one supervisor step, as the supervisor thread does."""
    with built.runs._lock:
        built.runs._tick()


@pytest.fixture
def blocking_gate():
    """The blocking gate's events, cleared; the gate is released at teardown."""
    training_plugins.gate_entered.clear()
    training_plugins.gate_release.clear()
    yield training_plugins
    training_plugins.gate_release.set()


# Exit texts.


def test_exit_text_names_unnamed_signal():
    assert exit_text(-35, None) == (
        "The worker was killed by signal 35 and left no error summary. See the run log."
    )


def test_exit_text_names_known_signal():
    assert exit_text(-signal.SIGTERM, None) == (
        "The worker was killed by SIGTERM and left no error summary. See the run log."
    )


def test_exit_text_sigkill_mentions_oom():
    assert exit_text(-signal.SIGKILL, None) == (
        "The worker was killed by SIGKILL and left no error summary. The kernel's "
        "out-of-memory killer sends SIGKILL; check `dmesg` and the run's memory use. "
        "See the run log."
    )


def test_exit_text_of_status():
    assert exit_text(3, None) == (
        "The worker exited with status 3 and left no error summary. See the run log."
    )


# Ending a run.


def test_unnamed_signal_fails_run(harness):
    built = harness(model_toml("slow", "slow"))
    run = built.runs.trigger("slow", actor="alice")
    running = _wait_progress(built, run["id"])

    os.kill(running["pid"], 35)  # SIGRTMIN + 1: signal.Signals has no name for it
    done = _wait_final(built, run["id"])

    assert done["state"] == "failed"
    assert done["exit_code"] == -35
    assert done["error"] == (
        "The worker was killed by signal 35 and left no error summary. See the run log."
    )
    assert built.runs.active_run_ids() == []
    again = built.runs.trigger("slow", actor="alice")
    assert again["state"] == "queued"
    built.runs.cancel(again["id"], actor="alice")
    assert _wait_final(built, again["id"])["state"] == "cancelled"


def test_error_while_ending_fails_run(harness, monkeypatch, caplog):
    built = harness(model_toml("fixed", "fixed-metrics"))

    def broken_outcome(active, returncode):
        raise RuntimeError("outcome exploded")

    monkeypatch.setattr(built.runs._ending, "outcome", broken_outcome)
    with caplog.at_level(logging.ERROR, logger="agent.training.ending"):
        run = built.runs.trigger("fixed", actor="alice")
        done = _wait_final(built, run["id"])

    assert done["state"] == "failed"
    assert done["exit_code"] == 0
    assert done["error"] == (
        "The agent failed while ending the run: RuntimeError: outcome exploded"
    )
    assert version_rows.list_versions(built.store.db, "fixed") == []
    errors = [r for r in caplog.records if r.name == "agent.training.ending"]
    assert [r.getMessage() for r in errors] == [
        f"ending run {run['id']} of model fixed failed; marking it failed"
    ]
    assert errors[0].exc_info[0] is RuntimeError
    assert built.runs.active_run_ids() == []


def test_run_tracked_until_end_stored(harness, monkeypatch, caplog):
    built = harness(model_toml("boom", "explode"))
    record_end = built.runs._ending.record_end
    attempts: list[str] = []

    def flaky_record_end(active, state, returncode, error):
        attempts.append(state.value)
        if len(attempts) == 1:
            raise sqlite3.OperationalError("database is locked")
        record_end(active, state, returncode, error)

    monkeypatch.setattr(built.runs._ending, "record_end", flaky_record_end)
    with caplog.at_level(logging.ERROR, logger="agent.training.ending"):
        run = built.runs.trigger("boom", actor="alice")
        done = _wait_final(built, run["id"])

    assert done["state"] == "failed"
    assert done["error"] == (
        "ValueError while training with the explode recipe: the fake recipe exploded "
        "after epoch 1"
    )
    assert attempts == ["failed", "failed"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"storing the end of run {run['id']} failed; retrying at the next check"
    ]
    wait_for(lambda: built.runs.active_run_ids() == [], what="the run to be released")


def test_pending_progress_is_stored_on_success(harness):
    # Ticked by hand, so no check runs between the worker's last progress
    # event and its exit: only the end of the run can store that progress.
    built = harness(model_toml("env", "environment"), start=False)
    run = built.runs.trigger("env", actor="alice")
    _tick(built)
    process = built.runs._active[run["id"]].process
    assert process.wait(timeout=60) == 0
    _tick(built)
    done = _wait_final(built, run["id"])

    assert done["state"] == "succeeded", done["error"]
    assert done["progress"]["device"] == "cpu"
    assert done["progress"]["cuda_visible_devices"] == ""


def test_nested_non_finite_report_keeps_run(harness):
    built = harness(model_toml("odd", "nested-non-finite"))
    done = _wait_final(built, built.runs.trigger("odd", actor="alice")["id"])

    assert done["state"] == "succeeded", done["error"]
    assert done["progress"]["losses"] == {
        "train": None,
        "parts": [1.5, None, [None, 2]],
    }
    assert done["metrics"] == {"accuracy": 1.0}


def test_extreme_features_still_give_reference(harness, tmp_path: Path):
    path = tmp_path / "extreme.csv"
    rows = [f"{value!r},{index % 2}" for index, value in enumerate([-1e308, 1e308] * 5)]
    path.write_text("x,y\n" + "\n".join(rows) + "\n")
    built = harness(model_toml("extreme", "fixed-metrics", dataset=csv_dataset(path)))
    done = _wait_final(built, built.runs.trigger("extreme", actor="alice")["id"])

    assert done["state"] == "succeeded", done["error"]
    reference = version_rows.get_version(built.store.db, "extreme", 1)["reference"]
    x = reference["features"]["x"]
    assert (x["min"], x["max"], x["mean"]) == (-1e308, 1e308, 0.0)
    assert np.all(np.isfinite(x["histogram"]["edges"]))


# Registration outside the supervisor's lock.


def test_slow_gate_leaves_supervisor_free(harness, blocking_gate):
    gates = '[[models.gates]]\nplugin = "blocking"'
    body = model_toml("gated", "fixed-metrics", gates=gates) + model_toml(
        "slow", "slow"
    )
    built = harness(body, training=TWO_SLOTS)
    slow = built.runs.trigger("slow", actor="alice")
    _wait_progress(built, slow["id"])
    gated = built.runs.trigger("gated", actor="alice")
    assert blocking_gate.gate_entered.wait(timeout=30)

    cancelled = built.runs.cancel(slow["id"], actor="bob")
    assert cancelled["cancel_requested_by"] == "bob"
    assert _wait_final(built, slow["id"], timeout=10)["state"] == "cancelled"
    assert run_rows.get_run(built.store.db, gated["id"])["state"] == "running"
    assert built.runs.active_run_ids() == [gated["id"]]

    blocking_gate.gate_release.set()
    done = _wait_final(built, gated["id"])
    assert done["state"] == "succeeded", done["error"]
    version = version_rows.get_version(built.store.db, "gated", 1)
    assert [(g["gate"], g["passed"]) for g in version["gates"]] == [("blocking", True)]
    wait_for(lambda: built.runs.active_run_ids() == [], what="the run to be released")


def test_registering_run_holds_its_slot(harness, blocking_gate):
    gates = '[[models.gates]]\nplugin = "blocking"'
    body = model_toml("gated", "fixed-metrics", gates=gates) + model_toml(
        "second", "fixed-metrics"
    )
    built = harness(body, start=False)
    gated = built.runs.trigger("gated", actor="alice")
    _tick(built)
    assert built.runs._active[gated["id"]].process.wait(timeout=60) == 0
    _tick(built)
    assert blocking_gate.gate_entered.wait(timeout=30)
    second = built.runs.trigger("second", actor="alice")
    _tick(built)

    assert run_rows.get_run(built.store.db, second["id"])["state"] == "queued"
    assert built.runs.active_run_ids() == [gated["id"]]
    blocking_gate.gate_release.set()
    assert _wait_final(built, gated["id"])["state"] == "succeeded"
    wait_for(lambda: built.runs.active_run_ids() == [], what="the slot to be freed")
    _tick(built)
    assert run_rows.get_run(built.store.db, second["id"])["state"] == "running"


def test_cancel_during_registration_cancels_run(harness, blocking_gate):
    gates = '[[models.gates]]\nplugin = "blocking"'
    built = harness(model_toml("gated", "fixed-metrics", gates=gates))
    run = built.runs.trigger("gated", actor="alice")
    assert blocking_gate.gate_entered.wait(timeout=30)

    built.runs.cancel(run["id"], actor="bob", reason="wrong data")
    blocking_gate.gate_release.set()
    done = _wait_final(built, run["id"])

    assert done["state"] == "cancelled"
    assert done["error"] == "Cancelled by bob: wrong data"
    assert version_rows.list_versions(built.store.db, "gated") == []
    assert [entry["action"] for entry in audit.list_entries(built.store.db)] == [
        "job.trigger",
        "run.cancel",
    ]
    paths = RunPaths.for_run(built.config.data_dir, "gated", run["id"])
    assert not paths.artifact_dir.exists()


# Cancel texts and processes outside the run's group.


def test_cancel_log_line_reads_as_sentences(harness):
    built = harness(model_toml("slow", "slow"))
    run = built.runs.trigger("slow", actor="alice")
    running = _wait_progress(built, run["id"])
    built.runs.cancel(run["id"], actor="operator")
    done = _wait_final(built, run["id"])

    log = _log(done)
    assert (
        f"Cancelled by operator. Sending SIGTERM to process group {running['pgid']}."
        in log
    )
    assert ".;" not in log


def test_budget_log_line_reads_as_sentences(harness):
    built = harness(model_toml("slow", "slow", resources="budget_seconds = 0.5"))
    run = built.runs.trigger("slow", actor="alice")
    done = _wait_final(built, run["id"])

    assert done["state"] == "timed_out"
    assert (
        "The run exceeded its wall-clock budget of 0.5 s. Sending SIGTERM to "
        f"process group {done['pgid']}." in _log(done)
    )


def test_cancel_ends_child_in_own_session(harness):
    built = harness(model_toml("escape", "escaping-child"))
    run = built.runs.trigger("escape", actor="alice")
    running = _wait_progress(built, run["id"])
    child_pid = running["progress"]["child_pid"]
    assert running["progress"]["child_pgid"] != running["pgid"]
    assert not _gone(child_pid)

    built.runs.cancel(run["id"], actor="bob")
    assert _wait_final(built, run["id"], timeout=10)["state"] == "cancelled"
    wait_for(lambda: _gone(child_pid), timeout=10, what=f"process {child_pid} to end")
