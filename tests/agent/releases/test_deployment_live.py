"""GET /api/v1/deployments/{name}/live through a real agent on a prepared store."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from harness import start_agent, write_config
from serving_helpers import add_version, deploy, model_toml

from store import Store
from store import predictions as prediction_rows

NO_SERVING = "\n[serving]\nenabled = false\n"


def _prediction(
    model: str,
    version: int,
    key: str,
    ts: float,
    *,
    row_index: int = 0,
    label: int | None = 1,
    latency: float = 0.01,
    status: int = 200,
    nonfinite: int = 0,
) -> tuple:
    outputs = json.dumps({"label": label, "probabilities": [0.5, 0.5]})
    return (
        model,
        version,
        key,
        row_index,
        ts,
        "[]",
        outputs,
        latency,
        status,
        nonfinite,
    )


def _fill(store: Store, now: float) -> None:
    """Log known traffic: m serves v1 with canary v2, n serves v1 alone."""
    recent, old = now - 60, now - 1800
    rows = [
        _prediction("m", 1, f"s{index}", recent, latency=0.01 * (index + 1))
        for index in range(4)
    ]
    rows += [
        _prediction("m", 1, "s4", recent, label=None, latency=0.05, status=500),
        _prediction("m", 1, "b/0", recent, latency=0.06),
        _prediction("m", 1, "b/1", recent, row_index=1, latency=0.9),
        _prediction(
            "m", 1, "b/2", recent, row_index=2, label=None, latency=0.9, nonfinite=1
        ),
    ]
    rows += [
        _prediction("m", 1, f"o{index}", old, latency=2.0, status=500)
        for index in range(5)
    ]
    rows += [
        _prediction("m", 2, f"c{index}", recent, label=0, latency=0.002)
        for index in range(3)
    ]
    rows += [_prediction("n", 1, f"s{index}", recent, status=500) for index in range(2)]
    labels = [("s0", "1"), ("s1", "0"), ("b/2", "1"), ("o0", "1")]
    labels += [("c0", "0"), ("c1", "0")]
    with store.write() as db:
        prediction_rows.insert_predictions(db, rows)
        prediction_rows.insert_feedback(db, "m", labels, now)
        prediction_rows.insert_feedback(db, "n", [("s0", "0")], now)


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """One agent that serves nothing, over a store with known predictions."""
    directory = tmp_path_factory.mktemp("live") / "agent"
    config = write_config(directory, NO_SERVING + model_toml("m") + model_toml("n"))
    (directory / "data").mkdir()
    store = Store(directory / "data" / "store.db")
    try:
        for model, count in (("m", 2), ("n", 1)):
            for seed in range(1, count + 1):
                add_version(store, directory / "data", model, seed=seed)
        deploy(store, "m", 1, canary=2, weight=0.25)
        deploy(store, "n", 1)
        _fill(store, time.time())
    finally:
        store.close()
    running = start_agent(config)
    yield running
    running.stop()


def test_live_stats_per_version(agent):
    with agent.client("viewer") as viewer:
        before = time.time()
        default = viewer.get("/api/v1/deployments/m/live")
        after = time.time()
        wide = viewer.get(
            "/api/v1/deployments/m/live", params={"window_seconds": "3600"}
        )
        alone = viewer.get("/api/v1/deployments/n/live")

    assert default.status_code == 200, default.text
    body = default.json()
    assert body["model"] == "m"
    assert body["window_seconds"] == 300.0
    assert before - 300 <= body["since"] <= after - 300
    assert body["stable"] == {
        "version": 1,
        "requests": 6,
        "rows": 8,
        "server_errors": 1,
        "nonfinite_rows": 1,
        "latency_p95_seconds": pytest.approx(0.06),
        "labelled": 3,
        "label_errors": 2,
        "error_rate": pytest.approx(2 / 3),
    }
    assert body["canary"] == {
        "version": 2,
        "requests": 3,
        "rows": 3,
        "server_errors": 0,
        "nonfinite_rows": 0,
        "latency_p95_seconds": pytest.approx(0.002),
        "labelled": 2,
        "label_errors": 0,
        "error_rate": 0.0,
    }
    assert wide.status_code == 200, wide.text
    assert wide.json()["window_seconds"] == 3600.0
    assert wide.json()["stable"]["requests"] == 11
    assert wide.json()["stable"]["server_errors"] == 6
    assert wide.json()["stable"]["labelled"] == 4
    assert wide.json()["stable"]["error_rate"] == 0.5
    assert wide.json()["stable"]["latency_p95_seconds"] == 2.0
    assert alone.status_code == 200, alone.text
    assert alone.json()["stable"]["requests"] == 2
    assert alone.json()["stable"]["server_errors"] == 2
    assert alone.json()["stable"]["labelled"] == 1
    assert alone.json()["canary"] is None


def test_live_rejects_bad_window(agent):
    values = ["5", "9.99", "3601", "86400", "1e400", "-300", "abc", "nan", "inf", ""]
    with agent.client("viewer") as viewer:
        responses = {
            value: viewer.get(
                "/api/v1/deployments/m/live", params={"window_seconds": value}
            )
            for value in values
        }

    for value, response in responses.items():
        assert response.status_code == 422, value
        assert response.json() == {
            "error": {
                "code": "invalid_request",
                "message": "query.window_seconds: Input should be a number of "
                f"seconds from 10 to 3600 (got {value!r})",
            }
        }


def test_live_bounds_are_allowed(agent):
    with agent.client("viewer") as viewer:
        low = viewer.get("/api/v1/deployments/m/live", params={"window_seconds": "10"})
        high = viewer.get(
            "/api/v1/deployments/m/live", params={"window_seconds": "3600"}
        )

    assert low.status_code == 200, low.text
    assert low.json()["window_seconds"] == 10.0
    assert high.status_code == 200, high.text
    assert high.json()["window_seconds"] == 3600.0


def test_live_unknown_model_and_auth(agent):
    with agent.client("viewer") as viewer:
        unknown = viewer.get("/api/v1/deployments/nope/live")
    anonymous = httpx.get(f"{agent.url}/api/v1/deployments/m/live", timeout=30)

    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": {
            "code": "not_found",
            "message": "Model 'nope' has no deployment; see GET /api/v1/deployments.",
        }
    }
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"
