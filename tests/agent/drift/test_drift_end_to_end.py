"""Drift through a running agent: served traffic with a shift raises an event,
an alert and, with retrain on drift enabled, a training run."""

from __future__ import annotations

import random
import statistics

import httpx
import pytest
from harness import RunningAgent, wait_for

SHIFT_FROM_ROW = 3000
ROWS = 5000
BATCH_ROWS = 100

MODEL = """
[serving]
port = 0

[[models]]
name = "shuttle"

[models.dataset]
plugin = "river"
options = { name = "Shuttle" }
target = "anomaly"

[models.recipe]
plugin = "tabular-mlp"
params = { max_epochs = 5, seed = 0 }

[models.monitoring]
retrain_on_drift = true
"""


def _shuttle_rows(seed: int) -> tuple[list[str], list[list[float]]]:
    from river import datasets

    rows = [x for x, _ in datasets.Shuttle()]
    random.Random(seed).shuffle(rows)
    names = list(rows[0])
    return names, [[float(row[name]) for name in names] for row in rows]


def _train_and_deploy(agent: RunningAgent) -> str:
    with agent.client("operator") as operator, agent.client("approver") as approver:
        run = operator.post("/api/v1/jobs/shuttle/trigger", json={}).json()
        wait_for(
            lambda: (
                operator.get(f"/api/v1/runs/{run['id']}").json()["state"] == "succeeded"
            ),
            timeout=120,
            what="version 1 to train",
        )
        release = operator.post(
            "/api/v1/releases",
            json={"model": "shuttle", "version": 1, "reason": "first version"},
        ).json()
        approved = approver.post(
            f"/api/v1/releases/{release['id']}/approve", json={"reason": "looks good"}
        )
        assert approved.status_code == 200, approved.text
        serving = wait_for(
            lambda: (
                (s := operator.get("/api/v1/serving").json())["state"] == "running"
                and s
            ),
            timeout=60,
            what="the serving worker",
        )
    return serving["url"]


@pytest.mark.slow
def test_shifted_traffic_raises_event_alert_and_run(agent_factory) -> None:
    agent = agent_factory(extra_config=MODEL)
    url = _train_and_deploy(agent)
    names, rows = _shuttle_rows(seed=1)
    f1 = names.index("f1")
    offset = 0.5 * statistics.pstdev(row[f1] for row in rows)

    with httpx.Client(base_url=url, timeout=30) as serving:
        for start in range(0, ROWS, BATCH_ROWS):
            batch = [list(row) for row in rows[start : start + BATCH_ROWS]]
            for index, row in enumerate(batch, start):
                if index >= SHIFT_FROM_ROW:
                    row[f1] += offset
            response = serving.post(
                "/v2/models/shuttle/infer",
                json={
                    "inputs": [
                        {
                            "name": "features",
                            "datatype": "FP32",
                            "shape": [len(batch), len(names)],
                            "data": [value for row in batch for value in row],
                        }
                    ]
                },
            )
            assert response.status_code == 200, response.text

    with agent.client("viewer") as viewer:
        events = wait_for(
            lambda: viewer.get(
                "/api/v1/drift/events", params={"model": "shuttle"}
            ).json()["items"],
            timeout=60,
            what="a drift event",
        )
        alerts = viewer.get("/api/v1/alerts").json()["items"]
        runs = wait_for(
            lambda: [
                run
                for run in viewer.get(
                    "/api/v1/runs", params={"model": "shuttle"}
                ).json()["items"]
                if run["trigger"] == "drift"
            ],
            timeout=30,
            what="a training run fired by drift",
        )

    feature_events = [e for e in events if e["signal"].startswith("feature:")]
    # The shift also moves the model's outputs, so a prediction event may
    # follow; no other feature may drift.
    assert [event["signal"] for event in feature_events] == ["feature:f1"]
    assert {event["signal"] for event in events} <= {"feature:f1", "prediction"}
    assert feature_events[0]["sample_index"] >= SHIFT_FROM_ROW
    assert feature_events[0]["sample_index"] < SHIFT_FROM_ROW + 500
    assert any(alert["kind"] == "drift" for alert in alerts)
    assert len(runs) == 1
