"""The worker's Open Inference Protocol v2 endpoints, good and bad requests."""

from __future__ import annotations

import json

import numpy as np
import pytest
from harness import wait_for
from serving_helpers import (
    FAST_SERVING,
    FEATURES,
    add_version,
    agent_config,
    deploy,
    expected_probabilities,
    infer_body,
    start_worker,
)

from store import Store

ROWS = [[0.5, -1.0, 2.0], [3.0, 0.25, -0.75]]


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    """One worker for the module: model m serves version 1, version 2 is pinnable."""
    config = agent_config(
        tmp_path_factory.mktemp("protocol"),
        FAST_SERVING + "max_batch_rows = 100\nmax_body_bytes = 20000\n",
    )
    store = Store(config.store_path)
    versions = [add_version(store, config.data_dir, "m", seed=seed) for seed in (1, 2)]
    deploy(store, "m", 1, canary=2, weight=0.0001)
    worker = start_worker(config, store)
    worker.versions = versions
    yield worker
    worker.stop()
    store.close()


@pytest.fixture
def client(worker):
    return worker.client()


def _logged(worker) -> int:
    return worker.store.db.conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[
        0
    ]


def _settled_count(worker, client) -> int:
    """Send a one-row marker and wait for its row; return the rows logged then.

    The log is written in request order, so once the marker is in the store
    every earlier request is too.
    """
    response = client.post("/v2/models/m/infer", json=infer_body(ROWS[:1]))
    assert response.status_code == 200
    marker = response.json()["id"]
    wait_for(
        lambda: worker.store.db.conn.execute(
            "SELECT 1 FROM predictions WHERE request_id = ?", (marker,)
        ).fetchone(),
        timeout=10,
        what=f"the marker request {marker}",
    )
    return _logged(worker)


def test_health_and_server_metadata(client):
    live = client.get("/v2/health/live")
    ready = client.get("/v2/health/ready")
    server = client.get("/v2")

    assert live.json() == {"live": True}
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "models": ["m"], "unavailable": {}}
    assert server.json()["name"] == "rigdeck"


def test_model_metadata(client):
    response = client.get("/v2/models/m")

    assert response.status_code == 200
    assert response.json() == {
        "name": "m",
        "versions": ["1", "2"],
        "platform": "tabular-mlp",
        "inputs": [
            {
                "name": "features",
                "datatype": "FP32",
                "shape": [-1, 3],
                "parameters": {"feature_names": list(FEATURES)},
            }
        ],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        ],
        "parameters": {
            "version": "1",
            "feature_names": list(FEATURES),
            "classes": [0, 1],
            "stable_version": 1,
            "canary_version": 2,
            "canary_weight": 0.0001,
        },
    }
    assert client.get("/v2/models/m/ready").json() == {"name": "m", "ready": True}
    assert client.get("/v2/models/m/versions/2").json()["parameters"]["version"] == "2"


def test_infer_answers_with_stable_version(worker, client):
    response = client.post("/v2/models/m/infer", json=infer_body(ROWS, id="req-1"))

    body = response.json()
    assert response.status_code == 200
    assert body["id"] == "req-1"
    assert body["model_name"] == "m"
    assert body["model_version"] == "1"
    label, probabilities = body["outputs"]
    expected = expected_probabilities(worker.versions[0], ROWS)
    assert label == {
        "name": "label",
        "datatype": "INT64",
        "shape": [2],
        "data": expected.argmax(axis=1).tolist(),
    }
    assert probabilities["shape"] == [2, 2]
    assert np.array_equal(np.float32(probabilities["data"]), expected.ravel())


def test_infer_pinned_version_and_nested_rows(worker, client):
    body = infer_body(ROWS)
    body["inputs"][0]["data"] = ROWS

    response = client.post("/v2/models/m/versions/2/infer", json=body)

    assert response.status_code == 200
    assert response.json()["model_version"] == "2"
    expected = expected_probabilities(worker.versions[1], ROWS)
    data = response.json()["outputs"][1]["data"]
    assert np.array_equal(np.float32(data), expected.ravel())


def test_generated_ids_are_unique(client):
    first = client.post("/v2/models/m/infer", json=infer_body(ROWS)).json()["id"]
    second = client.post("/v2/models/m/infer", json=infer_body(ROWS)).json()["id"]

    assert len(first) == 32
    assert first != second


def test_requested_outputs_only(client):
    body = infer_body(ROWS, outputs=[{"name": "label"}])

    response = client.post("/v2/models/m/infer", json=body)

    assert [output["name"] for output in response.json()["outputs"]] == ["label"]


def _features(**changes) -> dict:
    tensor = {
        "name": "features",
        "datatype": "FP32",
        "shape": [1, 3],
        "data": [1, 2, 3],
    }
    tensor.update(changes)
    return {"inputs": [tensor]}


BAD_REQUESTS = [
    (
        "malformed json",
        b'{"inputs": [',
        400,
        "invalid_json",
        "The request body is not valid JSON: Expecting value at line 1 column 13.",
    ),
    (
        "not an object",
        b"[1, 2, 3]",
        422,
        "invalid_request",
        "The request body must be a JSON object with 'inputs'; got a list.",
    ),
    (
        "two inputs",
        json.dumps({"inputs": [_features()["inputs"][0]] * 2}).encode(),
        422,
        "invalid_request",
        "'inputs' must be a list of exactly one tensor named 'features'; got 2.",
    ),
    (
        "wrong input name",
        json.dumps(_features(name="x")).encode(),
        422,
        "invalid_input",
        "Input 'x' is unknown: this model takes one input named 'features'.",
    ),
    (
        "wrong datatype",
        json.dumps(_features(datatype="INT64")).encode(),
        422,
        "invalid_datatype",
        "Input 'features' has datatype 'INT64'; this model takes FP32.",
    ),
    (
        "one-dimensional shape",
        json.dumps(_features(shape=[3])).encode(),
        422,
        "invalid_shape",
        "Input 'features' has shape [3]; send [rows, 3] with at least one row.",
    ),
    (
        "wrong feature count",
        json.dumps(_features(shape=[1, 4], data=[1, 2, 3, 4])).encode(),
        422,
        "invalid_shape",
        "Input 'features' has 4 features per row; the model takes 3: x1, x2, x3.",
    ),
    (
        "data shorter than shape",
        json.dumps(_features(shape=[2, 3])).encode(),
        422,
        "invalid_data",
        "Input 'features' has 3 values; shape [2, 3] needs 6.",
    ),
    (
        "string in data",
        json.dumps(_features(data=[1, "2", 3])).encode(),
        422,
        "invalid_datatype",
        "Input 'features' holds \"2\", which is not a number; FP32 data must be JSON "
        "numbers.",
    ),
    (
        "boolean in data",
        json.dumps(_features(data=[1, True, 3])).encode(),
        422,
        "invalid_datatype",
        "Input 'features' holds true, which is not a number; FP32 data must be JSON "
        "numbers.",
    ),
    (
        "NaN",
        b'{"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 3], '
        b'"data": [1, NaN, 3]}]}',
        422,
        "nonfinite_input",
        "Input 'features' row 0, feature 'x2' is nan, not finite. Send finite numbers; "
        "drop or impute missing values before the request.",
    ),
    (
        "Infinity",
        b'{"inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 3], '
        b'"data": [1, 2, 3, 4, 5, -Infinity]}]}',
        422,
        "nonfinite_input",
        "Input 'features' row 1, feature 'x3' is -inf, not finite. Send finite "
        "numbers; drop or impute missing values before the request.",
    ),
    (
        "beyond FP32",
        json.dumps(_features(data=[1, 2, 1e39])).encode(),
        422,
        "nonfinite_input",
        "Input 'features' row 0, feature 'x3' is 1e+39, outside the FP32 range. Send "
        "finite numbers; drop or impute missing values before the request.",
    ),
    (
        "bad id",
        json.dumps({**_features(), "id": "a/b"}).encode(),
        422,
        "invalid_request",
        "id 'a/b' is invalid: use 1 to 128 letters, digits, '.', '_', ':' or '-', or "
        "leave it out to get a generated id.",
    ),
    (
        "unknown output",
        json.dumps({**_features(), "outputs": [{"name": "logits"}]}).encode(),
        422,
        "invalid_output",
        "'outputs' asks for 'logits'; this model has the outputs label, probabilities.",
    ),
    (
        "batch over the row limit",
        json.dumps(_features(shape=[101, 3], data=[0.0] * 303)).encode(),
        413,
        "batch_too_large",
        "Input 'features' has 101 rows; the limit is 100 (serving.max_batch_rows). "
        "Split the batch.",
    ),
    (
        "body over the byte limit",
        b'{"inputs": [], "padding": "' + b"x" * 20000 + b'"}',
        413,
        "payload_too_large",
        "The request body has at least 20029 bytes; the limit is 20000 bytes "
        "(serving.max_body_bytes). Split the batch.",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_request_is_rejected(worker, client, body, status, code, message):
    before = _settled_count(worker, client)

    response = client.post(
        "/v2/models/m/infer", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == status
    assert response.json() == {"error": {"code": code, "message": message}}
    assert _settled_count(worker, client) == before + 1


def test_unknown_model_and_version(client):
    model = client.post("/v2/models/nope/infer", json=infer_body(ROWS))
    version = client.post("/v2/models/m/versions/7/infer", json=infer_body(ROWS))
    metadata = client.get("/v2/models/nope")

    assert model.status_code == 404
    assert model.json()["error"]["message"] == (
        "No model named 'nope' is served here. Served models: m."
    )
    assert version.status_code == 404
    assert version.json()["error"]["message"] == (
        "Model 'm' does not serve version '7'; it serves version 1 (stable), "
        "version 2 (canary)."
    )
    assert metadata.status_code == 404


def test_repeated_client_id_is_rejected(client):
    first = client.post("/v2/models/m/infer", json=infer_body(ROWS, id="same-id"))
    second = client.post("/v2/models/m/infer", json=infer_body(ROWS, id="same-id"))

    assert first.status_code == 200
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "duplicate_id"


def test_unknown_route_is_json(client):
    response = client.get("/v2/nothing")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_metrics_count_requests(worker, client):
    client.post("/v2/models/m/infer", json=infer_body(ROWS))
    client.post("/v2/models/m/infer", content=b"{", headers={"content-type": "x"})

    text = client.get("/metrics").text

    assert 'rigdeck_serving_requests_total{model="m",status="200",version="1"}' in text
    assert 'rigdeck_serving_requests_total{model="m",status="400",version=""}' in text
    assert (
        'rigdeck_serving_request_duration_seconds_count{model="m",version="1"}' in text
    )
    assert 'rigdeck_serving_canary_weight{model="m"} 0.0001' in text
    assert "rigdeck_serving_logged_rows_total" in text
