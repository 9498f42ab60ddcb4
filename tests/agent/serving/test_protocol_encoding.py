"""The inference response body and generated request ids."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np

from agent.serving.worker import protocol

FEATURES = ("x1", "x2")


def _request(rows: int, **extra) -> protocol.InferRequest:
    payload = {
        "inputs": [
            {
                "name": "features",
                "datatype": "FP32",
                "shape": [rows, 2],
                "data": [0.0] * rows * 2,
            }
        ],
        **extra,
    }
    return protocol.parse_infer_request(payload, FEATURES, 100_000)


def _reject_constant(name: str) -> None:
    raise AssertionError(f"the body contains {name}, which is not valid JSON")


def test_probabilities_read_back_as_the_same_fp32():
    rng = np.random.default_rng(7)
    probabilities = np.concatenate(
        [
            rng.random((20_000, 2)),
            rng.random((20_000, 2)) * 1e-30,
            [[0.0, 1.0], [1e-45, 3.4e38]],
        ]
    ).astype(np.float32)
    request = _request(len(probabilities), id="fp32")

    body, labels, nonfinite = protocol.encode_response(
        "m", 3, "INT64", (0, 1), request, probabilities
    )

    decoded = json.loads(body)
    data = decoded["outputs"][1]["data"]
    assert np.array_equal(np.float32(data), probabilities.ravel())
    assert decoded["outputs"][0]["data"] == labels
    assert labels == probabilities.argmax(axis=1).tolist()
    assert nonfinite == []
    assert decoded["id"] == "fp32"
    assert decoded["model_name"] == "m"
    assert decoded["model_version"] == "3"
    assert "parameters" not in decoded


def test_nonfinite_rows_are_null_in_valid_json():
    probabilities = np.array(
        [[0.5, 0.5], [np.nan, 0.25], [np.inf, -np.inf]], dtype=np.float32
    )

    body, labels, nonfinite = protocol.encode_response(
        "m", 1, "BYTES", ("cat", "dog"), _request(3), probabilities
    )

    decoded = json.loads(body, parse_constant=_reject_constant)
    assert decoded["outputs"][0]["data"] == ["cat", None, None]
    assert decoded["outputs"][1]["data"] == [0.5, 0.5, None, 0.25, None, None]
    assert decoded["parameters"] == {"nonfinite_rows": [1, 2]}
    assert labels == ["cat", None, None]
    assert nonfinite == [1, 2]


def test_only_requested_outputs_are_encoded():
    probabilities = np.array([[0.5, 0.5]], dtype=np.float32)
    request = _request(1, outputs=[{"name": "probabilities"}])

    body, _, _ = protocol.encode_response(
        "m", 1, "INT64", (0, 1), request, probabilities
    )

    outputs = json.loads(body)["outputs"]
    assert [output["name"] for output in outputs] == ["probabilities"]
    assert outputs[0]["shape"] == [1, 2]
    assert outputs[0]["datatype"] == "FP32"


def test_names_are_escaped():
    probabilities = np.array([[0.5, 0.5]], dtype=np.float32)

    body, _, _ = protocol.encode_response(
        'quote"and\\slash', 1, "INT64", (0, 1), _request(1), probabilities
    )

    assert json.loads(body)["model_name"] == 'quote"and\\slash'


def test_generated_ids_are_uuid7_in_time_order():
    first = protocol.generate_request_id()
    # Ids of the same millisecond are in random order; wait for the next one.
    while protocol.generate_request_id()[:12] == first[:12]:
        pass
    later = [protocol.generate_request_id() for _ in range(100)]

    parsed = uuid.UUID(first)
    assert len(first) == 32
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert all(first < request_id for request_id in later)
    assert len(set(later)) == 100
    milliseconds = int(first[:12], 16)
    assert abs(milliseconds / 1000 - time.time()) < 5
