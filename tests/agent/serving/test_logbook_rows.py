"""How the log writer turns one served request into ``predictions`` rows."""

from __future__ import annotations

import json

import numpy as np

from agent.serving.worker import protocol
from agent.serving.worker.logbook import LoggedRequest, rows_of
from store.predictions import PREDICTION_COLUMNS

FEATURES = ("x1", "x2", "x3")


def _logged(
    data: object,
    rows: int,
    probabilities: np.ndarray,
    classes: tuple = (0, 1),
    outputs: list[str] | None = None,
    request_id: str = "req",
) -> LoggedRequest:
    """Validate a request and build its response as the worker does, for the log.

    ``data`` is a list, or the JSON text of the ``data`` field as a client wrote it.
    """
    payload = {
        "id": request_id,
        "inputs": [
            {"name": "features", "datatype": "FP32", "shape": [rows, 3], "data": 0}
        ],
    }
    if outputs is not None:
        payload["outputs"] = [{"name": name} for name in outputs]
    data_text = data if isinstance(data, str) else json.dumps(data)
    body = json.dumps(payload).replace('"data": 0', f'"data": {data_text}').encode()
    request = protocol.parse_infer_request(json.loads(body), FEATURES, 1024)
    datatype = "BYTES" if isinstance(classes[0], str) else "INT64"
    encoded, labels, nonfinite = protocol.encode_response(
        "m", 4, datatype, classes, request, probabilities
    )
    answered = "probabilities" in request.outputs
    return LoggedRequest(
        model="m",
        version=4,
        request_id=request.request_id,
        ts=1000.0,
        latency_seconds=0.002,
        status=200,
        rows=rows,
        request_body=body,
        labels=labels,
        response_body=encoded if answered else None,
        probabilities=None if answered else probabilities,
        nonfinite_rows=nonfinite,
    )


def _columns(row: tuple) -> dict:
    return dict(zip(PREDICTION_COLUMNS, row, strict=True))


def test_rows_copy_features_as_sent():
    probabilities = np.array([[0.75, 0.25], [0.125, 0.875]], dtype=np.float32)
    entry = _logged("[0.50, -1, 2E-3,3.25,0, -0.75]", 2, probabilities)

    rows = [_columns(row) for row in rows_of(entry)]

    assert [row["features_json"] for row in rows] == [
        "[0.50, -1, 2E-3]",
        "[3.25, 0, -0.75]",
    ]
    assert [json.loads(row["features_json"]) for row in rows] == [
        [0.5, -1, 0.002],
        [3.25, 0, -0.75],
    ]
    assert [row["request_id"] for row in rows] == ["req/0", "req/1"]
    assert [row["row_index"] for row in rows] == [0, 1]
    assert rows[0]["model"] == "m"
    assert rows[0]["version"] == 4
    assert rows[0]["status"] == 200
    assert rows[0]["latency_seconds"] == 0.002


def test_rows_of_nested_data_match_flat():
    probabilities = np.array([[0.75, 0.25], [0.125, 0.875]], dtype=np.float32)
    flat = _logged([0.5, -1.0, 2.0, 3.0, 0.25, -0.75], 2, probabilities)
    nested = _logged([[0.5, -1.0, 2.0], [3.0, 0.25, -0.75]], 2, probabilities)

    assert rows_of(flat) == rows_of(nested)


def test_one_row_request_keeps_its_id():
    probabilities = np.array([[0.75, 0.25]], dtype=np.float32)

    (row,) = rows_of(_logged([1.0, 2.0, 3.0], 1, probabilities, request_id="one"))

    assert _columns(row)["request_id"] == "one"


def test_outputs_match_the_response():
    probabilities = np.array([[0.6, 0.4], [0.1, 0.9]], dtype=np.float32)
    entry = _logged([0.0] * 6, 2, probabilities)
    answered = json.loads(entry.response_body)["outputs"]

    outputs = [json.loads(_columns(row)["outputs_json"]) for row in rows_of(entry)]

    assert [output["label"] for output in outputs] == answered[0]["data"]
    assert [value for output in outputs for value in output["probabilities"]] == (
        answered[1]["data"]
    )
    assert np.array_equal(
        np.float32([output["probabilities"] for output in outputs]), probabilities
    )


def test_outputs_without_answered_probabilities():
    probabilities = np.array([[0.6, 0.4], [0.1, 0.9]], dtype=np.float32)
    entry = _logged([0.0] * 6, 2, probabilities, outputs=["label"])

    outputs = [json.loads(_columns(row)["outputs_json"]) for row in rows_of(entry)]

    assert entry.response_body is None
    assert [output["label"] for output in outputs] == [0, 1]
    assert np.array_equal(
        np.float32([output["probabilities"] for output in outputs]), probabilities
    )


def test_string_labels_are_json_strings():
    probabilities = np.array([[0.6, 0.4]], dtype=np.float32)
    entry = _logged([0.0] * 3, 1, probabilities, classes=("cat", "dog"))

    (row,) = rows_of(entry)

    assert json.loads(_columns(row)["outputs_json"])["label"] == "cat"


def test_nonfinite_row_is_stored_with_nulls():
    probabilities = np.array([[np.nan, 0.5], [0.25, 0.75]], dtype=np.float32)
    entry = _logged([0.0] * 6, 2, probabilities)

    rows = [_columns(row) for row in rows_of(entry)]

    assert [row["nonfinite"] for row in rows] == [1, 0]
    assert json.loads(rows[0]["outputs_json"]) == {
        "label": None,
        "probabilities": [None, 0.5],
    }
    assert json.loads(rows[1]["outputs_json"]) == {
        "label": 1,
        "probabilities": [0.25, 0.75],
    }


def test_failed_request_rows_have_null_outputs():
    probabilities = np.array([[0.6, 0.4], [0.1, 0.9]], dtype=np.float32)
    entry = _logged([0.0] * 6, 2, probabilities)._replace(
        status=500, labels=None, response_body=None, nonfinite_rows=[]
    )

    rows = [_columns(row) for row in rows_of(entry)]

    assert [row["outputs_json"] for row in rows] == ["null", "null"]
    assert [row["status"] for row in rows] == [500, 500]
