"""Health, host, telemetry and the OpenAPI schema on a real agent process.

The agent runs with the fake NVML configured as "library not found", the
situation of a host without an NVIDIA driver.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from harness import RunningAgent, start_agent, wait_for, write_config

NO_NVML = {"RIGDECK_FAKE_NVML": json.dumps({"init_error": "library_not_found"})}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    agent = start_agent(write_config(tmp_path_factory.mktemp("host")), env=NO_NVML)
    yield agent
    agent.stop()


def test_health_needs_no_token(agent: RunningAgent) -> None:
    response = httpx.get(f"{agent.url}/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["name"] == "test-agent"
    assert body["version"] == "0.1.0"
    assert body["uptime_seconds"] >= 0


def test_host_without_token_is_401(agent: RunningAgent) -> None:
    response = httpx.get(f"{agent.url}/api/v1/host")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_host_with_viewer_token_is_200(agent: RunningAgent) -> None:
    with agent.client("viewer") as client:
        response = client.get("/api/v1/host")

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "test-agent"
    assert body["region"] == "eu"
    assert body["software"]["rigdeck"] == "0.1.0"


def test_host_without_nvml_reports_gpu_unavailable(agent: RunningAgent) -> None:
    with agent.client("viewer") as client:
        gpu = wait_for(
            lambda: _sampled_gpu(client),
            timeout=30,
            what="the first telemetry sample",
        )

    assert gpu["status"] == "unavailable"
    assert gpu["reason"] == "nvml_not_found"
    assert gpu["gpus"] == []
    assert "NVML library" in gpu["message"]


def _sampled_gpu(client: httpx.Client) -> dict | None:
    gpu = client.get("/api/v1/host").json()["gpu"]
    return None if gpu["reason"] == "not_sampled_yet" else gpu


def test_telemetry_returns_samples_after_flush(agent: RunningAgent) -> None:
    metric = "cpu_utilization_ratio"
    with agent.client("viewer") as client:
        wait_for(
            lambda: metric in client.get("/api/v1/telemetry/metrics").json()["items"],
            timeout=30,
            what=f"the sampler to store {metric}",
        )
        until = time.time() + 1
        response = client.get(
            "/api/v1/telemetry",
            params={"metric": metric, "since": until - 600, "until": until, "step": 1},
        )

    assert response.status_code == 200
    body = response.json()
    assert body["metric"] == metric
    assert body["step"] == 1.0
    assert body["columns"] == ["ts", "mean", "min", "max", "count"]
    assert len(body["series"]) == 1
    assert body["series"][0]["labels"] == {}
    points = body["series"][0]["points"]
    assert len(points) >= 1
    for ts, mean, low, high, count in points:
        assert until - 600 <= ts < until
        assert 0.0 <= low <= mean <= high <= 1.0
        assert count >= 1


def test_telemetry_without_token_is_401(agent: RunningAgent) -> None:
    response = httpx.get(f"{agent.url}/api/v1/telemetry", params={"metric": "x"})

    assert response.status_code == 401


def test_openapi_schema_is_served(agent: RunningAgent) -> None:
    response = httpx.get(f"{agent.url}/api/v1/openapi.json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "rigdeck agent test-agent"
    for path in (
        "/api/v1/health",
        "/api/v1/host",
        "/api/v1/telemetry",
        "/api/v1/audit",
        "/api/v1/audit/verify",
        "/api/v1/alerts/{alert_id}/ack",
        "/api/v1/tokens",
        "/metrics",
    ):
        assert path in schema["paths"], path


def test_unknown_route_is_404_in_error_shape(agent: RunningAgent) -> None:
    with agent.client("viewer") as client:
        response = client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not_found",
            "message": "No route GET /api/v1/nothing-here; see /docs for the API.",
        }
    }
