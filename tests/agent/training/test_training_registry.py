"""Registration of a run as a version: verified artifact, gates, one transaction."""

from __future__ import annotations

import json
import time

import pytest
from training_helpers import model_toml

from agent.training.launcher import RunPaths
from agent.training.registry import RegistrationError, register_run
from store import alerts, audit
from store import runs as run_rows
from store import versions as version_rows
from store.artifacts import write_atomic, write_manifest
from store.runs import InvalidTransitionError
from store.versions import OverrideError

GATES = """
[[models.gates]]
plugin = "metric-threshold"
options = { metric = "accuracy", min = 0.9 }
[[models.gates]]
plugin = "no-regression"
options = { metric = "accuracy", tolerance = 0.01 }
[[models.gates]]
plugin = "residency"
"""


def _finished_run(
    built, model: str, metrics: dict, state: str = "running"
) -> tuple[dict, RunPaths]:
    """A run row in ``state`` whose worker wrote an artifact and result.json."""
    run = built.runs.trigger(model, actor="alice")
    with built.store.write() as db:
        run_rows.transition(db, run["id"], "running", started_at=time.time())
        if state != "running":
            run_rows.transition(db, run["id"], state)
    paths = RunPaths.for_run(built.config.data_dir, model, run["id"])
    paths.run_dir.mkdir(parents=True)
    write_atomic(paths.artifact_dir / "weights.bin", b"w" * 32)
    manifest = write_manifest(paths.artifact_dir, ["weights.bin"])
    result = {
        "metrics": metrics,
        "weights_file": "weights.bin",
        "artifact_sha256": manifest.sha256("weights.bin"),
        "files": {"weights.bin": manifest.sha256("weights.bin")},
        "data_sha256": "d" * 64,
        "rows": 10,
        "feedback_rows": 0,
        "features": ["x1"],
        "target": "y",
        "reference": {"rows": 10, "features": {}},
        "software": {"python": "3.11", "torch": None, "cuda": None},
        "code_revision": None,
        "hostname": "host",
        "finished_at": time.time(),
    }
    write_atomic(paths.result, json.dumps(result).encode())
    return run_rows.get_run(built.store.db, run["id"]), paths


def _register(built, model: str, metrics: dict, state: str = "running") -> dict:
    run, paths = _finished_run(built, model, metrics, state)
    return register_run(
        built.store, built.config, built.config.model(model), run, paths
    )


def _set_production(built, model: str, number: int) -> None:
    with built.store.write() as db:
        db.conn.execute(
            "INSERT INTO deployments (model, stable_version, updated_at) VALUES (?, ?, "
            "0) "
            "ON CONFLICT (model) DO UPDATE SET stable_version = "
            "excluded.stable_version",
            (model, number),
        )


def test_versions_are_numbered_per_model(harness):
    built = harness(
        model_toml("a", "fixed-metrics") + model_toml("b", "fixed-metrics"), start=False
    )
    assert _register(built, "a", {"accuracy": 0.9})["number"] == 1
    assert _register(built, "b", {"accuracy": 0.9})["number"] == 1
    assert _register(built, "a", {"accuracy": 0.9})["number"] == 2


def test_gates_pass_without_production(harness):
    built = harness(model_toml("m", "fixed-metrics", gates=GATES), start=False)
    version = _register(built, "m", {"accuracy": 0.95})
    assert version["gate_state"] == "passed"
    reasons = {gate["gate"]: gate["reason"] for gate in version["gates"]}
    assert reasons == {
        "metric-threshold(accuracy)": "accuracy is 0.9500, at least the minimum 0.9.",
        "no-regression(accuracy)": (
            "No version is in production, so accuracy 0.9500 has no baseline."
        ),
        "residency": "The training data has no residency restriction.",
    }
    assert version_rows.releasable(version) == (True, "Every gate passed.")


def test_regression_against_production_fails(harness):
    built = harness(model_toml("m", "fixed-metrics", gates=GATES), start=False)
    _register(built, "m", {"accuracy": 0.95})
    _set_production(built, "m", 1)

    within = _register(built, "m", {"accuracy": 0.945})
    worse = _register(built, "m", {"accuracy": 0.93})

    assert within["gate_state"] == "passed"
    assert worse["gate_state"] == "failed"
    regression = next(
        g for g in worse["gates"] if g["gate"] == "no-regression(accuracy)"
    )
    assert regression["passed"] is False
    assert regression["reason"] == (
        "accuracy is 0.9300 against 0.9500 for production version 1 (tolerance 0.01): "
        "a regression."
    )
    assert regression["details"]["baseline_version"] == 1
    releasable, reason = version_rows.releasable(worse)
    assert releasable is False
    assert (
        reason == "Gates failed (no-regression(accuracy)); an admin can override them "
        "with a reason."
    )
    gate_alerts = [
        a for a in alerts.list_alerts(built.store.db) if a["kind"] == "gate_failed"
    ]
    assert [a["source"] for a in gate_alerts] == ["model/m/version/3"]


def test_raising_gate_fails_with_reason(harness):
    gates = '[[models.gates]]\nplugin = "explode"'
    built = harness(model_toml("m", "fixed-metrics", gates=gates), start=False)
    version = _register(built, "m", {"accuracy": 0.95})
    assert version["gate_state"] == "failed"
    assert version["gates"] == [
        {
            "gate": "explode",
            "passed": False,
            "reason": "The gate raised RuntimeError: the fake gate exploded",
            "details": {},
            "evaluated_at": version["gates"][0]["evaluated_at"],
        }
    ]


def test_override_failed_version(harness):
    built = harness(model_toml("m", "fixed-metrics", gates=GATES), start=False)
    version = _register(built, "m", {"accuracy": 0.5})
    assert version["gate_state"] == "failed"
    with built.store.write() as db:
        overridden = version_rows.override_gates(db, "m", 1, "root", "known-bad metric")
    assert overridden["gate_state"] == "overridden"
    assert overridden["overridden_by"] == "root"
    assert version_rows.releasable(overridden) == (
        True,
        "Its gates failed but root overrode them: known-bad metric",
    )
    with (
        pytest.raises(OverrideError, match="gate state 'overridden'"),
        built.store.write() as db,
    ):
        version_rows.override_gates(db, "m", 1, "root", "again")


def test_tampered_artifact_registers_nothing(harness):
    built = harness(model_toml("m", "fixed-metrics", gates=GATES), start=False)
    run, paths = _finished_run(built, "m", {"accuracy": 0.95})
    (paths.artifact_dir / "weights.bin").write_bytes(b"w" * 31)

    with pytest.raises(
        RegistrationError, match="has 31 bytes; the manifest records 32"
    ):
        register_run(built.store, built.config, built.config.model("m"), run, paths)
    assert version_rows.list_versions(built.store.db, "m") == []
    assert run_rows.get_run(built.store.db, run["id"])["state"] == "running"


def test_missing_result_registers_nothing(harness):
    built = harness(model_toml("m", "fixed-metrics"), start=False)
    run, paths = _finished_run(built, "m", {"accuracy": 0.95})
    paths.result.unlink()
    with pytest.raises(RegistrationError, match="wrote no result.json"):
        register_run(built.store, built.config, built.config.model("m"), run, paths)
    assert version_rows.list_versions(built.store.db, "m") == []


def test_cancelled_run_registers_nothing(harness):
    built = harness(model_toml("m", "fixed-metrics", gates=GATES), start=False)
    run, paths = _finished_run(built, "m", {"accuracy": 0.95}, state="cancelled")

    with pytest.raises(InvalidTransitionError):
        register_run(built.store, built.config, built.config.model("m"), run, paths)
    assert version_rows.list_versions(built.store.db, "m") == []
    assert (
        built.store.db.execute("SELECT COUNT(*) FROM gate_results").fetchone()[0] == 0
    )
    assert built.store.db.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 0
    actions = [entry["action"] for entry in audit.list_entries(built.store.db)]
    assert "version.register" not in actions
    assert run_rows.get_run(built.store.db, run["id"])["state"] == "cancelled"


def test_residency_gate_blocks_other_region(harness):
    dataset = 'plugin = "counting"\nregions = ["us", "ca"]'
    gates = '[[models.gates]]\nplugin = "residency"'
    built = harness(
        model_toml("m", "fixed-metrics", dataset=dataset, gates=gates), start=False
    )
    version = _register(built, "m", {"accuracy": 0.95})
    assert version["gate_state"] == "failed"
    assert version["gates"][0]["reason"] == (
        "This agent's region 'eu' is not one the training data may go to (us, ca)."
    )
    assert version["lineage"]["data_regions"] == ["us", "ca"]
