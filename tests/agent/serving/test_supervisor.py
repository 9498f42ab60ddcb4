"""The agent starts, restarts and gives up on its serving worker."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import httpx
import psutil
import pytest
from harness import wait_for
from serving_helpers import FAST_SERVING, add_version, deploy, infer_body, model_toml

from store import Store
from store import alerts as alert_rows

ROW = [[0.5, -1.0, 2.0]]


def _store_with_deployment(directory: Path) -> None:
    """Write a store whose model m serves version 1, before the agent starts."""
    data_dir = directory / "data"
    data_dir.mkdir(parents=True)
    store = Store(data_dir / "store.db")
    try:
        add_version(store, data_dir, "m", seed=1)
        deploy(store, "m", 1)
    finally:
        store.close()


def _serving(agent) -> dict:
    with agent.client("viewer") as client:
        return client.get("/api/v1/serving").json()


def _running(agent) -> dict | None:
    status = _serving(agent)
    return status if status["state"] == "running" else None


def _maps_torch(pid: int) -> bool:
    return "/torch/" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_worker_restarts_on_same_port(agent_factory, tmp_path):
    directory = tmp_path / "agent"
    _store_with_deployment(directory)
    agent = agent_factory(
        extra_config=FAST_SERVING + model_toml("m"), directory=directory
    )

    first = wait_for(lambda: _running(agent), timeout=60, what="a running worker")
    with httpx.Client(base_url=first["url"], timeout=30) as client:
        before = client.post("/v2/models/m/infer", json=infer_body(ROW))
    os.kill(first["pid"], signal.SIGKILL)
    second = wait_for(
        lambda: (s := _running(agent)) and s["pid"] != first["pid"] and s,
        timeout=60,
        what="a restarted worker",
    )
    with httpx.Client(base_url=second["url"], timeout=30) as client:
        after = client.post("/v2/models/m/infer", json=infer_body(ROW))

    assert before.json()["model_version"] == "1"
    assert after.status_code == 200
    assert after.json()["outputs"] == before.json()["outputs"]
    assert second["port"] == first["port"]
    assert second["restarts"] == 1
    assert second["last_exit_code"] == -signal.SIGKILL
    runtime = json.loads((agent.data_dir / "serving.json").read_text())
    assert runtime["pid"] == second["pid"]
    with agent.client("viewer") as client:
        item = client.get("/api/v1/deployments").json()["items"][0]
    assert item["model"] == "m"
    assert item["stable_version"] == 1
    assert item["serving_url"] == second["url"]
    assert not _maps_torch(agent.process.pid)
    assert _maps_torch(second["pid"])

    # An agent killed with SIGKILL leaves its worker behind; the next agent on
    # the data directory ends it before starting its own.
    agent.stop(signal.SIGKILL)
    restarted = agent_factory(directory=directory)
    third = wait_for(
        lambda: (s := _running(restarted)) and s["pid"] != second["pid"] and s,
        timeout=60,
        what="a worker of the restarted agent",
    )

    with httpx.Client(base_url=third["url"], timeout=30) as client:
        again = client.post("/v2/models/m/infer", json=infer_body(ROW))

    assert _gone(second["pid"])
    assert third["restarts"] == 0
    assert again.json()["outputs"] == before.json()["outputs"]
    assert restarted.stop() == 0
    assert _gone(third["pid"])


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_crash_loop_raises_alert(agent_factory, tmp_path):
    directory = tmp_path / "agent"
    _store_with_deployment(directory)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    serving = FAST_SERVING.replace("port = 0", f"port = {port}") + "max_restarts = 2\n"
    try:
        agent = agent_factory(extra_config=serving, directory=directory)

        failed = wait_for(
            lambda: (s := _serving(agent))["state"] == "failed" and s,
            timeout=60,
            what="the worker to give up",
        )
    finally:
        blocker.close()

    assert failed["restarts"] == 2
    assert failed["last_exit_code"] == 3
    with agent.client("viewer") as client:
        alerts = client.get("/api/v1/alerts", params={"open": "true"}).json()["items"]
    worker_alerts = [a for a in alerts if a["kind"] == "serving_worker_failed"]
    assert len(worker_alerts) == 1
    assert worker_alerts[0]["severity"] == "critical"
    assert worker_alerts[0]["message"].startswith(
        "The serving worker crashed 3 times within 300 s (last exit status 3)"
    )
    log = (agent.data_dir / "serving" / "worker.log").read_text()
    assert f"cannot listen on 127.0.0.1:{port}" in log
    store = Store(agent.data_dir / "store.db")
    try:
        assert [a["kind"] for a in alert_rows.list_alerts(store.db)] == [
            "serving_worker_failed"
        ]
    finally:
        store.close()
