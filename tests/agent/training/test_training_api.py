"""The training API end to end: a real agent process, real worker subprocesses."""

from __future__ import annotations

import hashlib
import signal
import time
from pathlib import Path

import psutil
import pytest
from harness import agent_cli, start_agent, wait_for, write_config
from training_helpers import csv_dataset, model_toml, threshold_gate, write_csv

FINAL = ("succeeded", "failed", "cancelled", "timed_out", "interrupted")


@pytest.fixture
def start(agent_factory, fake_plugins: Path):
    """Start an agent with the fake plugins installed and ``body`` as its [[models]]."""

    def factory(body: str, **kwargs):
        from tests.plugins import plugin_site

        extra = f"[training]\ncancel_grace_seconds = 2.0\n{body}"
        env = {"PYTHONPATH": plugin_site.python_path(fake_plugins)}
        return agent_factory(extra_config=extra, env=env, **kwargs)

    return factory


def _wait_final(client, run_id: int, timeout: float = 60) -> dict:
    def finished():
        run = client.get(f"/api/v1/runs/{run_id}").json()
        return run if run["state"] in FINAL else None

    return wait_for(finished, timeout=timeout, what=f"run {run_id} to finish")


def _wait_running(client, run_id: int) -> dict:
    def running():
        run = client.get(f"/api/v1/runs/{run_id}").json()
        return run if run["state"] == "running" and run["progress"] else None

    return wait_for(running, timeout=30, what=f"run {run_id} to report progress")


def _follow_log(client, run_id: int) -> str:
    text, offset = "", 0
    while True:
        chunk = client.get(
            f"/api/v1/runs/{run_id}/log", params={"offset": offset, "limit_bytes": 200}
        ).json()
        assert chunk["offset"] == offset
        text += chunk["text"]
        offset = chunk["next_offset"]
        if not chunk["running"] and offset == chunk["size_bytes"]:
            return text


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_trigger_registers_version(start, tmp_path: Path):
    csv_path = write_csv(tmp_path / "tiny.csv", rows=80)
    dataset = csv_dataset(csv_path)
    gates = threshold_gate("accuracy", 0.0)
    agent = start(
        model_toml(
            "tiny",
            "tabular-mlp",
            dataset=dataset,
            params="{ max_epochs = 3 }",
            gates=gates,
        )
    )
    operator = agent.client("operator")

    response = operator.post(
        "/api/v1/jobs/tiny/trigger", json={"reason": "first build"}
    )
    assert response.status_code == 202
    assert response.json()["state"] == "queued"
    run_id = response.json()["id"]
    run = _wait_final(operator, run_id)
    assert run["state"] == "succeeded", run["error"]
    assert run["version"] == 1
    assert run["trigger"] == "manual"
    assert run["requested_by"].startswith("test-operator-")

    versions = operator.get("/api/v1/models/tiny/versions").json()
    assert versions["next_cursor"] is None
    assert [item["number"] for item in versions["items"]] == [1]
    assert "reference" not in versions["items"][0]
    version = operator.get("/api/v1/models/tiny/versions/1").json()
    assert version["gate_state"] == "passed"
    assert version["releasable"] is True
    assert version["lineage"]["run_id"] == run_id
    assert version["lineage"]["data_sha256"] == run["data_sha256"]
    assert set(version["reference"]["features"]) == {"x1", "x2"}
    assert set(version["reference"]["features"]["x1"]["quantiles"]) == {
        "p1",
        "p5",
        "p25",
        "p50",
        "p75",
        "p95",
        "p99",
    }
    weights = Path(version["artifact_path"]) / "model.pt"
    assert (
        hashlib.sha256(weights.read_bytes()).hexdigest() == version["artifact_sha256"]
    )

    from plugins.recipes.tabular_mlp import load_model

    model = load_model(
        version["artifact_path"], expected_sha256=version["artifact_sha256"]
    )
    assert model.predict_proba([[1.0, 2.0], [6.0, 0.0]]).shape == (2, 2)

    models = operator.get("/api/v1/models").json()["items"]
    assert [(m["name"], m["latest_version"], m["configured"]) for m in models] == [
        ("tiny", 1, True)
    ]
    job = operator.get("/api/v1/jobs").json()["items"][0]
    assert job["name"] == "tiny"
    assert job["fire_counts"] == {"started": 1, "missed": 0, "skipped": 0, "refused": 0}
    assert job["last_fire"]["run_id"] == run_id
    assert job["next_fire_at"] is None
    log = _follow_log(operator, run_id)
    assert f"run {run_id} of model tiny starting on the CPU" in log
    assert f"run {run_id} ended succeeded: version 1" in log
    actions = [
        (e["action"], e["reason"])
        for e in operator.get("/api/v1/audit").json()["items"]
    ]
    assert ("job.trigger", "first build") in actions
    assert ("version.register", None) in actions
    # The agent's own process never loaded torch, nor river's compiled modules.
    mapped = Path(f"/proc/{agent.process.pid}/maps").read_text()
    assert "libtorch" not in mapped
    assert "/river/" not in mapped


def test_failed_gates_need_admin_override(start):
    gates = threshold_gate("accuracy", 0.9)
    agent = start(
        model_toml(
            "strict",
            "fixed-metrics",
            params="{ metrics = { accuracy = 0.5 } }",
            gates=gates,
        )
    )
    operator, admin = agent.client("operator"), agent.client("admin")
    run = _wait_final(
        operator, operator.post("/api/v1/jobs/strict/trigger").json()["id"]
    )
    assert run["state"] == "succeeded"

    version = operator.get("/api/v1/models/strict/versions/1").json()
    assert version["gate_state"] == "failed"
    assert version["releasable"] is False
    assert version["gates"][0]["reason"] == "accuracy is 0.5000, below the minimum 0.9."
    url = "/api/v1/models/strict/versions/1/override"
    assert operator.post(url, json={"reason": "ok"}).status_code == 403
    assert admin.post(url, json={}).status_code == 422
    assert admin.post(url, json={"reason": ""}).status_code == 422
    response = admin.post(url, json={"reason": "accuracy is measured wrongly here"})
    assert response.status_code == 200
    assert response.json()["gate_state"] == "overridden"
    assert response.json()["override_reason"] == "accuracy is measured wrongly here"
    assert response.json()["releasable"] is True
    again = admin.post(url, json={"reason": "again"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_failed"
    entry = operator.get("/api/v1/audit").json()["items"][-1]
    assert entry["action"] == "version.override"
    assert entry["target"] == "model/strict/version/1"
    assert entry["reason"] == "accuracy is measured wrongly here"
    assert entry["before"] == {"gate_state": "failed"}
    assert entry["after"] == {"gate_state": "overridden"}


def test_runs_filter_and_pages(start):
    agent = start(model_toml("quick", "fixed-metrics") + model_toml("boom", "explode"))
    operator = agent.client("operator")
    ids = []
    for _ in range(3):
        ids.append(operator.post("/api/v1/jobs/quick/trigger").json()["id"])
        _wait_final(operator, ids[-1])
    failed_id = operator.post("/api/v1/jobs/boom/trigger").json()["id"]
    _wait_final(operator, failed_id)

    first = operator.get("/api/v1/runs", params={"model": "quick", "limit": 2}).json()
    assert [run["id"] for run in first["items"]] == [ids[2], ids[1]]
    assert first["next_cursor"] == ids[1]
    second = operator.get(
        "/api/v1/runs", params={"model": "quick", "limit": 2, "cursor": ids[1]}
    ).json()
    assert [run["id"] for run in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    failed = operator.get("/api/v1/runs", params={"state": "failed"}).json()["items"]
    assert [(run["id"], run["model"]) for run in failed] == [(failed_id, "boom")]
    assert failed[0]["error"].startswith(
        "ValueError while training with the explode recipe"
    )
    assert (
        operator.get("/api/v1/runs", params={"state": "running"}).json()["items"] == []
    )


def test_bad_requests_change_nothing(start):
    agent = start(model_toml("slow", "slow"))
    viewer, operator = agent.client("viewer"), agent.client("operator")

    assert viewer.post("/api/v1/jobs/slow/trigger").status_code == 403
    unknown = operator.post("/api/v1/jobs/fast/trigger")
    assert unknown.status_code == 404
    assert "Known jobs: slow" in unknown.json()["error"]["message"]
    for path in (
        "/api/v1/models/..%2F..%2Fetc/versions",
        "/api/v1/models/a.b/versions",
        "/api/v1/jobs/..%2Fslow/trigger",
        "/api/v1/models/slow/versions/0",
        "/api/v1/runs/0",
    ):
        method = operator.post if path.endswith("trigger") else operator.get
        status = method(path).status_code
        assert 400 <= status < 500, (path, status)
    assert operator.get("/api/v1/runs", params={"state": "paused"}).status_code == 422
    assert operator.get("/api/v1/runs/999").status_code == 404
    assert operator.get("/api/v1/models/slow/versions/1").status_code == 404
    assert operator.get("/api/v1/runs").json()["items"] == []

    run_id = operator.post("/api/v1/jobs/slow/trigger").json()["id"]
    conflict = operator.post("/api/v1/jobs/slow/trigger")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "run_active"
    assert viewer.post(f"/api/v1/runs/{run_id}/cancel").status_code == 403
    assert (
        operator.get(f"/api/v1/runs/{run_id}/log", params={"offset": 10**9}).status_code
        == 400
    )
    operator.post(f"/api/v1/runs/{run_id}/cancel")
    _wait_final(operator, run_id)
    finished = operator.post(f"/api/v1/runs/{run_id}/cancel")
    assert finished.status_code == 409
    assert finished.json()["error"]["code"] == "run_finished"
    assert len(operator.get("/api/v1/runs").json()["items"]) == 1


def test_cancel_over_api_within_five_seconds(start):
    agent = start(model_toml("slow", "slow"))
    operator = agent.client("operator")
    run_id = operator.post("/api/v1/jobs/slow/trigger").json()["id"]
    running = _wait_running(operator, run_id)

    started = time.monotonic()
    response = operator.post(f"/api/v1/runs/{run_id}/cancel", json={"reason": "stop"})
    assert response.status_code == 202
    run = _wait_final(operator, run_id, timeout=10)
    elapsed = time.monotonic() - started

    assert run["state"] == "cancelled"
    assert elapsed < 5
    assert wait_for(lambda: _gone(running["pid"]), timeout=5, what="the worker to exit")


def test_kill9_of_agent_interrupts_run(start):
    agent = start(model_toml("slow", "slow"))
    operator = agent.client("operator")
    run_id = operator.post("/api/v1/jobs/slow/trigger").json()["id"]
    worker_pid = _wait_running(operator, run_id)["pid"]

    agent.stop(signal.SIGKILL)
    assert agent.process.returncode == -signal.SIGKILL
    assert not _gone(worker_pid)

    restarted = start_agent(agent.config)
    try:
        operator = restarted.client("operator")
        run = operator.get(f"/api/v1/runs/{run_id}").json()
        assert run["state"] == "interrupted"
        assert "while this run was running" in run["error"]
        assert wait_for(
            lambda: _gone(worker_pid), timeout=10, what="the orphaned worker to end"
        )
        next_id = operator.post("/api/v1/jobs/slow/trigger").json()["id"]
        assert next_id == run_id + 1
        _wait_running(operator, next_id)
        operator.post(f"/api/v1/runs/{next_id}/cancel")
        assert _wait_final(operator, next_id)["state"] == "cancelled"
    finally:
        restarted.stop()


def test_unknown_recipe_stops_agent_start(tmp_path: Path):
    shuttle = 'plugin = "river"\noptions = { name = "Shuttle" }'
    config = write_config(
        tmp_path / "agent", model_toml("m", "tabular-mpl", dataset=shuttle)
    )
    result = agent_cli(config, "run", check=False)
    assert result.returncode == 1
    assert (
        "models.0.recipe: No recipe plugin named 'tabular-mpl' is installed."
        in result.stderr
    )
    assert "Installed recipe plugins: tabular-mlp" in result.stderr


def test_agent_stop_interrupts_running_run(start):
    from store import Store
    from store import runs as run_rows

    agent = start(model_toml("slow", "slow"))
    operator = agent.client("operator")
    run_id = operator.post("/api/v1/jobs/slow/trigger").json()["id"]
    worker_pid = _wait_running(operator, run_id)["pid"]

    agent.stop(signal.SIGTERM)

    assert _gone(worker_pid)
    store = Store(agent.data_dir / "store.db")
    try:
        run = run_rows.get_run(store.db, run_id)
    finally:
        store.close()
    assert run["state"] == "interrupted"
    assert run["error"] == "The agent stopped while the run was running."


def test_log_reader_never_splits_a_character(tmp_path):
    from agent.api.routes_training import _read_log

    log = tmp_path / "run.log"
    log.write_text("a\N{GRINNING FACE}b", encoding="utf-8")

    for limit in range(1, 7):
        offset, pieces = 0, []
        while offset < 6:
            text, offset, size = _read_log(str(log), offset, limit)
            pieces.append(text)
        assert "".join(pieces) == "a\N{GRINNING FACE}b"
        assert "\N{REPLACEMENT CHARACTER}" not in "".join(pieces)
