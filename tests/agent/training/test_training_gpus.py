"""GPU placement through the agent's real GPU probe, on the fake NVML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import wait_for
from training_helpers import model_toml

FINAL = ("succeeded", "failed", "cancelled", "timed_out", "interrupted")


@pytest.fixture
def start_with_gpus(agent_factory, fake_plugins: Path):
    """Start an agent whose fake NVML follows ``scenario``."""

    def factory(body: str, scenario: dict):
        from tests.plugins import plugin_site

        env = {
            "PYTHONPATH": plugin_site.python_path(fake_plugins),
            "RIGDECK_FAKE_NVML": json.dumps(scenario),
        }
        return agent_factory(extra_config=body, env=env)

    return factory


def _wait_final(client, run_id: int) -> dict:
    def finished():
        run = client.get(f"/api/v1/runs/{run_id}").json()
        return run if run["state"] in FINAL else None

    return wait_for(finished, timeout=60, what=f"run {run_id} to finish")


def test_run_is_pinned_to_a_healthy_gpu(start_with_gpus):
    scenario = {"gpus": [{"lost": True}, {}, {}]}
    agent = start_with_gpus(
        model_toml("gpu", "environment", resources="gpus = 2"), scenario
    )
    operator = agent.client("operator")
    run = _wait_final(operator, operator.post("/api/v1/jobs/gpu/trigger").json()["id"])

    assert run["state"] == "succeeded", run["error"]
    assert run["gpus"] == [1, 2]
    assert run["progress"]["device"] == "cuda"
    assert run["progress"]["cuda_visible_devices"] == "1,2"


def test_cpu_run_sees_no_gpu(start_with_gpus):
    agent = start_with_gpus(model_toml("cpu", "environment"), {"gpus": [{}]})
    operator = agent.client("operator")
    run = _wait_final(operator, operator.post("/api/v1/jobs/cpu/trigger").json()["id"])

    assert run["gpus"] == []
    assert run["progress"]["device"] == "cpu"
    assert run["progress"]["cuda_visible_devices"] == ""


def test_driver_mismatch_refuses_gpu_run(start_with_gpus):
    agent = start_with_gpus(
        model_toml("gpu", "environment", resources="gpus = 1"),
        {"init_error": "driver_mismatch"},
    )
    operator = agent.client("operator")
    response = operator.post("/api/v1/jobs/gpu/trigger")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "placement_refused"
    assert response.json()["error"]["message"].endswith("Reason code: driver_mismatch.")
    assert operator.get("/api/v1/runs").json()["items"] == []


def test_too_few_healthy_gpus_refuses_run(start_with_gpus):
    scenario = {"gpus": [{}, {"lost": True}]}
    agent = start_with_gpus(
        model_toml("gpu", "environment", resources="gpus = 2"), scenario
    )
    response = agent.client("operator").post("/api/v1/jobs/gpu/trigger")

    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        "The run needs 2 GPUs; this host has 1 healthy (0). "
        "Reason code: not_enough_gpus."
    )
