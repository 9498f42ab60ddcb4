"""Runs in real worker subprocesses: success, cancel, timeout, and every way to fail."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from harness import wait_for
from training_helpers import csv_dataset, model_toml, threshold_gate, write_csv

from agent.training.errors import RunConflict, RunNotActive
from agent.training.launcher import RunPaths, group_exists
from store import alerts, audit
from store import jobs as job_rows
from store import runs as run_rows
from store import versions as version_rows
from store.artifacts import verify_manifest

FINAL = ("succeeded", "failed", "cancelled", "timed_out", "interrupted")


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


def _log(built, run: dict) -> str:
    return Path(run["log_path"]).read_text()


def _artifact_dir(built, run: dict) -> Path:
    return RunPaths.for_run(built.config.data_dir, run["model"], run["id"]).artifact_dir


def test_succeeded_run_registers_version(harness):
    gates = threshold_gate("accuracy", 0.9)
    built = harness(
        model_toml(
            "fixed",
            "fixed-metrics",
            params="{ metrics = { accuracy = 0.95 } }",
            gates=gates,
        )
    )
    run = built.runs.trigger("fixed", actor="alice", reason="first build")
    assert run["state"] == "queued"

    done = _wait_final(built, run["id"])
    assert done["state"] == "succeeded"
    assert done["exit_code"] == 0
    assert done["metrics"] == {"accuracy": 0.95}
    version = version_rows.get_version(built.store.db, "fixed", 1)
    assert version["run_id"] == run["id"]
    assert version["gate_state"] == "passed"
    assert [(g["gate"], g["passed"]) for g in version["gates"]] == [
        ("metric-threshold(accuracy)", True)
    ]
    manifest = verify_manifest(version["artifact_path"])
    assert version["artifact_sha256"] == manifest.sha256("weights.bin")
    lineage = version["lineage"]
    assert lineage["run_id"] == run["id"]
    assert lineage["data_sha256"] == done["data_sha256"]
    assert lineage["data_rows"] == 20
    assert lineage["dataset"]["features"] == ["x1", "x2"]
    assert lineage["recipe"] == {
        "plugin": "fixed-metrics",
        "params": {"metrics": {"accuracy": 0.95}},
    }
    assert lineage["host"]["region"] == "eu"
    assert lineage["software"]["torch"] is None
    assert set(version["reference"]["features"]) == {"x1", "x2"}
    assert version["reference"]["features"]["x1"]["count"] == 20
    actions = [entry["action"] for entry in audit.list_entries(built.store.db)]
    assert actions == ["job.trigger", "version.register"]
    trigger_entry = audit.list_entries(built.store.db)[0]
    assert trigger_entry["actor"] == "alice"
    assert trigger_entry["reason"] == "first build"


def test_second_trigger_while_active_conflicts(harness):
    built = harness(model_toml("slow", "slow"))
    run = built.runs.trigger("slow", actor="alice")
    with pytest.raises(RunConflict, match=f"already has run {run['id']}"):
        built.runs.trigger("slow", actor="alice")
    assert len(run_rows.list_runs(built.store.db)) == 1
    assert [e["action"] for e in audit.list_entries(built.store.db)] == ["job.trigger"]


def test_cancel_ends_running_run_within_five_seconds(harness):
    built = harness(model_toml("slow", "slow"))
    run = built.runs.trigger("slow", actor="alice")
    running = _wait_progress(built, run["id"])
    assert group_exists(running["pgid"])

    started = time.monotonic()
    built.runs.cancel(run["id"], actor="bob", reason="wrong data")
    done = _wait_final(built, run["id"], timeout=10)
    elapsed = time.monotonic() - started

    assert done["state"] == "cancelled"
    assert elapsed < 5
    assert done["error"] == "Cancelled by bob: wrong data"
    assert done["cancel_requested_by"] == "bob"
    assert not group_exists(running["pgid"])
    assert not _artifact_dir(built, done).exists()
    assert (
        f"Cancelled by bob: wrong data. Sending SIGTERM to process group "
        f"{running['pgid']}." in _log(built, done)
    )
    assert version_rows.list_versions(built.store.db, "slow") == []
    entry = audit.list_entries(built.store.db)[-1]
    assert (entry["action"], entry["actor"], entry["reason"]) == (
        "run.cancel",
        "bob",
        "wrong data",
    )
    with pytest.raises(RunNotActive):
        built.runs.cancel(run["id"], actor="bob")


def test_cancel_escalates_to_sigkill(harness):
    built = harness(
        model_toml("stubborn", "slow", params="{ ignore_sigterm = true }"),
        training="cancel_grace_seconds = 0.5",
    )
    run = built.runs.trigger("stubborn", actor="alice")
    running = _wait_progress(built, run["id"])
    built.runs.cancel(run["id"], actor="bob")

    done = _wait_final(built, run["id"], timeout=10)
    assert done["state"] == "cancelled"
    assert done["exit_code"] == -9
    assert "SIGKILL" in _log(built, done)
    assert not group_exists(running["pgid"])


def test_cancel_queued_run_before_it_starts(harness):
    body = model_toml("first", "slow") + model_toml("second", "slow")
    built = harness(body)
    first = built.runs.trigger("first", actor="alice")
    _wait_progress(built, first["id"])
    second = built.runs.trigger("second", actor="alice")
    assert run_rows.get_run(built.store.db, second["id"])["state"] == "queued"

    cancelled = built.runs.cancel(second["id"], actor="bob")
    assert cancelled["state"] == "cancelled"
    assert cancelled["error"] == "Cancelled by bob before it started."
    assert cancelled["started_at"] is None
    built.runs.cancel(first["id"], actor="bob")
    assert _wait_final(built, first["id"])["state"] == "cancelled"


def test_budget_overrun_times_out_and_next_fire_runs(harness):
    built = harness(model_toml("slow", "slow", resources="budget_seconds = 1"))
    run = built.runs.trigger("slow", actor="alice")
    done = _wait_final(built, run["id"], timeout=15)

    assert done["state"] == "timed_out"
    assert (
        done["error"]
        == "The run was ended because the run exceeded its wall-clock budget of 1 s."
    )
    assert not group_exists(done["pgid"])
    open_alerts = alerts.list_alerts(built.store.db, open_only=True)
    assert [(a["kind"], a["source"]) for a in open_alerts] == [
        ("run_timed_out", f"run/{run['id']}")
    ]
    record = built.runs.fire("slow", scheduled_at=time.time())
    assert record.outcome == "started"
    assert job_rows.fire_counts(built.store.db, "slow")["started"] == 2


def test_recipe_that_raises_fails_with_summary(harness):
    built = harness(model_toml("boom", "explode"))
    run = built.runs.trigger("boom", actor="alice")
    done = _wait_final(built, run["id"])

    assert done["state"] == "failed"
    assert done["exit_code"] == 1
    assert done["error"] == (
        "ValueError while training with the explode recipe: the fake recipe exploded "
        "after epoch 1"
    )
    assert done["progress"]["epoch"] == 1
    log = _log(built, done)
    assert "Traceback (most recent call last)" in log
    assert 'raise ValueError("the fake recipe exploded after epoch 1")' in log
    assert not _artifact_dir(built, done).exists()
    assert version_rows.list_versions(built.store.db, "boom") == []
    kinds = [a["kind"] for a in alerts.list_alerts(built.store.db)]
    assert kinds == ["run_failed"]


def test_memory_exhaustion_fails_with_summary(harness):
    body = model_toml(
        "hog", "memory-hog", resources=f"memory_limit_bytes = {768 * 1024 * 1024}"
    )
    built = harness(body)
    run = built.runs.trigger("hog", actor="alice")
    done = _wait_final(built, run["id"])

    assert done["state"] == "failed"
    assert done["error"] == (
        "The run ran out of memory while training with the memory-hog recipe; it "
        "probably exceeded resources.memory_limit_bytes (805306368 bytes). Raise "
        "that limit, or lower max_rows or batch_size."
    )
    assert "MemoryError" in _log(built, done)
    assert version_rows.list_versions(built.store.db, "hog") == []


def test_unwritten_weights_file_fails(harness):
    built = harness(model_toml("forgetful", "forgetful"))
    done = _wait_final(built, built.runs.trigger("forgetful", actor="alice")["id"])
    assert done["state"] == "failed"
    assert done["error"] == (
        "RuntimeError while sealing the artifact: The recipe returned weights_file "
        "'missing.pt' but wrote no files through job.write_artifact."
    )


@pytest.mark.parametrize(
    ("csv_text", "dataset_extra", "expected"),
    [
        (
            "x1,y\n1,0\n2,1\n",
            'features = ["x1", "x2"]',
            "Row 1 of the CSV file {path} has no column 'x2'; its columns are: x1, y. "
            "Fix features, target or sensitive_attribute in [models.dataset].",
        ),
        (
            "x1,x2,y\n1,2,0\n3,red,1\n",
            "",
            "Row 2 of the CSV file {path}: feature 'x2' is 'red', not a number. "
            "Features "
            "must be numeric; encode categories as numbers first.",
        ),
        (
            "x1,x2,y\n",
            "",
            "The CSV file {path} yielded no rows; a run needs at least two.",
        ),
        ("x1,x2,y\n1,,0\n", "", "Row 1 of the CSV file {path}: feature 'x2' is empty."),
        (
            "x1,x2,y\n1,nan,0\n",
            "",
            "Row 1 of the CSV file {path}: feature 'x2' is 'nan', not finite.",
        ),
        (
            "x1,x2,label\n1,2,0\n",
            "",
            "Row 1 of the CSV file {path} has no column 'y'; its columns are: x1, x2, "
            "label. "
            "Fix features, target or sensitive_attribute in [models.dataset].",
        ),
    ],
    ids=[
        "missing-column",
        "non-numeric",
        "empty",
        "blank-value",
        "nan",
        "missing-target",
    ],
)
def test_bad_data_fails_with_summary(
    harness, tmp_path: Path, csv_text, dataset_extra, expected
):
    path = tmp_path / "data.csv"
    path.write_text(csv_text)
    dataset = csv_dataset(path) + "\n" + dataset_extra
    built = harness(model_toml("bad", "tabular-mlp", dataset=dataset))
    done = _wait_final(built, built.runs.trigger("bad", actor="alice")["id"])

    assert done["state"] == "failed"
    assert done["error"] == expected.format(path=path)
    assert "Traceback (most recent call last)" in _log(built, done)
    assert version_rows.list_versions(built.store.db, "bad") == []
    assert not _artifact_dir(built, done).exists()


def test_tabular_mlp_on_small_csv_registers(harness, tmp_path: Path):
    path = write_csv(tmp_path / "tiny.csv", rows=80)
    dataset = csv_dataset(path)
    built = harness(
        model_toml("tiny", "tabular-mlp", dataset=dataset, params="{ max_epochs = 3 }")
    )
    done = _wait_final(built, built.runs.trigger("tiny", actor="alice")["id"])

    assert done["state"] == "succeeded", done["error"]
    assert done["progress"]["epoch"] == 3
    assert "validation_loss" in done["progress"]
    version = version_rows.get_version(built.store.db, "tiny", 1)
    assert version["metrics"]["rows"] == 16
    assert version["metrics"]["train_rows"] == 64
    assert set(version["metrics"]) >= {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "recall_by_class",
    }
    assert version["lineage"]["software"]["torch"].startswith("2.")
    assert version["lineage"]["recipe"]["params"]["max_epochs"] == 3
    assert sorted(verify_manifest(version["artifact_path"]).files) == [
        "model.json",
        "model.pt",
    ]


class ShrinkingInventory:
    """GPUs 0 and 1 are healthy until ``lose`` removes one."""

    def __init__(self) -> None:
        self.healthy = [0, 1]

    def placeable_gpus(self) -> list[int]:
        return list(self.healthy)

    def refusal_reason(self) -> None:
        return None

    def lose(self, index: int) -> None:
        self.healthy.remove(index)


def test_lost_gpu_fails_its_run(harness):
    inventory = ShrinkingInventory()
    built = harness(
        model_toml("gpu", "slow", resources="gpus = 1"), inventory=inventory
    )
    run = built.runs.trigger("gpu", actor="alice")
    running = _wait_progress(built, run["id"])
    assert running["gpus"] == [0]

    inventory.lose(0)
    done = _wait_final(built, run["id"], timeout=15)

    assert done["state"] == "failed"
    assert done["error"] == (
        "The run was ended because GPU 0 assigned to the run is lost or unreadable."
    )
    assert not group_exists(running["pgid"])


def test_drift_fire_is_audited_with_reason(harness):
    built = harness(model_toml("drifty", "slow"))

    record = built.runs.fire(
        "drifty",
        scheduled_at=None,
        trigger="drift",
        actor="drift-monitor",
        reason="Drift event 4 on feature:f1 of version 1.",
    )

    assert record.outcome == "started"
    run = run_rows.get_run(built.store.db, record.run_id)
    assert run["trigger"] == "drift"
    assert run["requested_by"] == "drift-monitor"
    entries = [
        e for e in audit.list_entries(built.store.db) if e["action"] == "job.trigger"
    ]
    assert len(entries) == 1
    assert entries[0]["actor"] == "drift-monitor"
    assert entries[0]["target"] == "job/drifty"
    assert entries[0]["reason"] == "Drift event 4 on feature:f1 of version 1."
    built.runs.cancel(record.run_id, actor="test")
