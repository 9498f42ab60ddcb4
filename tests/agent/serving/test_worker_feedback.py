"""Feedback labels, the predictions log, and how training reads them back."""

from __future__ import annotations

import json

from harness import wait_for
from serving_helpers import FAST_SERVING, FEATURES, add_version, deploy, infer_body

from agent.training.data import feedback_rows

ROWS = [[0.5, -1.0, 2.0], [3.0, 0.25, -0.75], [1.0, 1.0, 1.0]]


def _deployed(store, config) -> None:
    add_version(store, config.data_dir, "m", seed=1)
    deploy(store, "m", 1)


def _rows_of(worker, request_id: str) -> list[dict]:
    return list(
        worker.store.db.query(
            "SELECT * FROM predictions WHERE request_id = ? OR request_id LIKE ? "
            "ORDER BY row_index",
            [request_id, f"{request_id}/%"],
        )
    )


def test_batch_is_logged_one_row_each(worker_factory):
    worker = worker_factory(_deployed)
    client = worker.client()

    body = client.post("/v2/models/m/infer", json=infer_body(ROWS, id="batch-1")).json()

    rows = wait_for(lambda: _rows_of(worker, "batch-1"), timeout=10, what="logged rows")
    assert [row["request_id"] for row in rows] == [
        "batch-1/0",
        "batch-1/1",
        "batch-1/2",
    ]
    assert [row["row_index"] for row in rows] == [0, 1, 2]
    assert [json.loads(row["features_json"]) for row in rows] == ROWS
    labels = body["outputs"][0]["data"]
    probabilities = body["outputs"][1]["data"]
    for index, row in enumerate(rows):
        outputs = json.loads(row["outputs_json"])
        assert outputs["label"] == labels[index]
        assert outputs["probabilities"] == probabilities[index * 2 : index * 2 + 2]
        assert row["version"] == 1
        assert row["status"] == 200
        assert row["nonfinite"] == 0
        assert row["latency_seconds"] > 0


def test_feedback_reaches_training(worker_factory):
    worker = worker_factory(_deployed)
    client = worker.client()
    client.post("/v2/models/m/infer", json=infer_body(ROWS[:1], id="one"))
    client.post("/v2/models/m/infer", json=infer_body(ROWS[1:], id="two"))

    single = client.post("/v2/models/m/feedback", json={"id": "one", "label": 1})
    batch = client.post("/v2/models/m/feedback", json={"id": "two", "labels": [0, "1"]})

    assert single.status_code == 200
    assert single.json() == {"id": "one", "model_name": "m", "labels": 1}
    assert batch.json() == {"id": "two", "model_name": "m", "labels": 2}
    stored = list(
        worker.store.db.query("SELECT request_id, label FROM feedback ORDER BY id")
    )
    assert stored == [
        {"request_id": "one", "label": "1"},
        {"request_id": "two/0", "label": "0"},
        {"request_id": "two/1", "label": "1"},
    ]
    wait_for(lambda: len(_rows_of(worker, "two")) == 2, timeout=10, what="logged rows")
    rows = feedback_rows(worker.config.store_path, "m", list(FEATURES), None, "y")
    assert rows == [
        {"x1": 0.5, "x2": -1.0, "x3": 2.0, "y": "1"},
        {"x1": 3.0, "x2": 0.25, "x3": -0.75, "y": "0"},
        {"x1": 1.0, "x2": 1.0, "x3": 1.0, "y": "1"},
    ]


BAD_FEEDBACK = [
    ("unknown id", {"id": "never", "label": 1}, 404, "not_found"),
    ("too few labels", {"id": "fb", "labels": [1]}, 422, "invalid_labels"),
    (
        "label and labels",
        {"id": "fb", "label": 1, "labels": [1, 0]},
        422,
        "invalid_labels",
    ),
    ("null label", {"id": "fb", "labels": [1, None]}, 422, "invalid_labels"),
    ("list label", {"id": "fb", "labels": [1, [0]]}, 422, "invalid_labels"),
    ("empty string", {"id": "fb", "labels": [1, "  "]}, 422, "invalid_labels"),
    ("bad id", {"id": "a/b", "label": 1}, 422, "invalid_request"),
    (
        "unknown field",
        {"id": "fb", "labels": [1, 0], "weight": 2},
        422,
        "invalid_request",
    ),
]


def test_bad_feedback_is_rejected(worker_factory):
    worker = worker_factory(_deployed)
    client = worker.client()
    client.post("/v2/models/m/infer", json=infer_body(ROWS[:2], id="fb"))

    for name, body, status, code in BAD_FEEDBACK:
        response = client.post("/v2/models/m/feedback", json=body)

        assert response.status_code == status, name
        assert response.json()["error"]["code"] == code, name
    count = worker.store.db.conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
    assert count == 0


def test_feedback_messages_name_the_value(worker_factory):
    worker = worker_factory(_deployed)
    client = worker.client()
    client.post("/v2/models/m/infer", json=infer_body(ROWS[:2], id="fb"))

    unknown = client.post("/v2/models/m/feedback", json={"id": "never", "label": 1})
    count = client.post("/v2/models/m/feedback", json={"id": "fb", "labels": [1]})
    label = client.post("/v2/models/m/feedback", json={"id": "fb", "labels": [1, None]})
    first = client.post("/v2/models/m/feedback", json={"id": "fb", "labels": [1, 0]})
    again = client.post("/v2/models/m/feedback", json={"id": "fb", "labels": [1, 0]})
    nan = client.post(
        "/v2/models/m/feedback",
        content=b'{"id": "fb", "labels": [1, NaN]}',
        headers={"content-type": "application/json"},
    )

    assert unknown.json()["error"]["message"] == (
        "No logged request 'never' for model 'm'; send the 'id' of an inference "
        "response of this model."
    )
    assert count.json()["error"]["message"] == (
        "Request 'fb' had 2 rows; send 2 labels (got 1), in row order."
    )
    assert label.json()["error"]["message"] == (
        "Label 1 is None; a label is an integer, a finite number or a non-empty "
        "string of at most 200 characters."
    )
    assert first.status_code == 200
    assert again.status_code == 409
    assert again.json()["error"]["message"] == (
        "Feedback for request 'fb/0' of model 'm' is stored already; each prediction "
        "takes one label."
    )
    assert nan.status_code == 422


def test_unsampled_request_takes_no_feedback(worker_factory):
    worker = worker_factory(_deployed, serving=FAST_SERVING + "log_sample_rate = 0.0\n")
    client = worker.client()
    client.post("/v2/models/m/infer", json=infer_body(ROWS[:1], id="quiet"))

    response = client.post("/v2/models/m/feedback", json={"id": "quiet", "label": 1})

    assert response.status_code == 409
    assert response.json()["error"]["message"] == (
        "Request 'quiet' was not logged (serving.log_sample_rate is below 1), so a "
        "label for it cannot be used."
    )
