"""Bad requests get a 4xx that names the bad value, and change nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from harness import RunningAgent, start_agent, wait_for, write_config

MAX_BODY_BYTES = 4096
METRIC = "cpu_utilization_ratio"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    config = write_config(tmp_path_factory.mktemp("errors"))
    text = config.read_text().replace(
        "[api]\n", f"[api]\nmax_body_bytes = {MAX_BODY_BYTES}\n"
    )
    config.write_text(text)
    agent = start_agent(config)
    with agent.client("viewer") as client:
        wait_for(
            lambda: METRIC in client.get("/api/v1/telemetry/metrics").json()["items"],
            timeout=30,
            what=f"the sampler to store {METRIC}",
        )
    yield agent
    agent.stop()


@pytest.fixture
def admin(agent: RunningAgent) -> Iterator[httpx.Client]:
    with agent.client("admin") as client:
        yield client


def _state(client: httpx.Client) -> tuple[list[str], int]:
    """Return the token names and the audit entry count, which bad requests keep."""
    names = [row["name"] for row in client.get("/api/v1/tokens").json()["items"]]
    entries = client.get("/api/v1/audit", params={"limit": 1000}).json()["items"]
    return names, len(entries)


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    return body["error"]


# (case id, query parameters, status, code, text the message must contain)
BAD_TELEMETRY_QUERIES = [
    (
        "step zero",
        {"step": "0"},
        400,
        "invalid_parameter",
        "step=0.0 must be a positive",
    ),
    (
        "step negative",
        {"step": "-5"},
        400,
        "invalid_parameter",
        "step=-5.0 must be a positive",
    ),
    (
        "step nan",
        {"step": "nan"},
        400,
        "invalid_parameter",
        "step=nan must be a positive",
    ),
    (
        "since equals until",
        {"since": "1000", "until": "1000"},
        400,
        "invalid_parameter",
        "since=1000.0 is not before until=1000.0",
    ),
    (
        "since after until",
        {"since": "2000", "until": "1000"},
        400,
        "invalid_parameter",
        "since=2000.0 is not before until=1000.0",
    ),
    (
        "negative since",
        {"since": "-1"},
        400,
        "invalid_parameter",
        "since=-1.0 is not a Unix time in seconds",
    ),
    (
        "too many points",
        {"since": "0", "until": "100000", "step": "1"},
        400,
        "invalid_parameter",
        "step=1.0 gives more than the 11000 points allowed over 100000 seconds; "
        "use a step of at least 10 seconds",
    ),
    (
        "until past the year 9999",
        {"since": "0", "until": "1e22"},
        400,
        "invalid_parameter",
        "until=1e+22 is not a Unix time in seconds between 0 and 253402300799",
    ),
    (
        "until infinite with default since",
        {"until": "1e309"},
        400,
        "invalid_parameter",
        "until=inf is not a Unix time",
    ),
    (
        "non-numeric since",
        {"since": "yesterday"},
        422,
        "invalid_request",
        "query.since: Input should be a valid number",
    ),
    (
        "non-numeric step",
        {"step": "fast"},
        422,
        "invalid_request",
        "query.step: Input should be a valid number",
    ),
]


@pytest.mark.parametrize(
    "params, status, code, expected",
    [case[1:] for case in BAD_TELEMETRY_QUERIES],
    ids=[case[0] for case in BAD_TELEMETRY_QUERIES],
)
def test_bad_telemetry_query_names_parameter(
    agent: RunningAgent, params: dict, status: int, code: str, expected: str
) -> None:
    with agent.client("viewer") as client:
        response = client.get("/api/v1/telemetry", params={"metric": METRIC, **params})

    error = _error(response)
    assert response.status_code == status
    assert error["code"] == code
    assert expected in error["message"]


def test_unknown_metric_lists_known_ones(agent: RunningAgent) -> None:
    with agent.client("viewer") as client:
        response = client.get("/api/v1/telemetry", params={"metric": "gpu_flux_ratio"})

    error = _error(response)
    assert response.status_code == 404
    assert error["code"] == "unknown_metric"
    assert "No samples for metric 'gpu_flux_ratio'" in error["message"]
    assert METRIC in error["message"]


def test_missing_metric_is_named(agent: RunningAgent) -> None:
    with agent.client("viewer") as client:
        response = client.get("/api/v1/telemetry")

    assert response.status_code == 422
    assert _error(response)["message"] == "query.metric: Field required"


GREATER_OR_EQUAL = "Input should be greater than or equal to"

# (case id, path, text the message must contain)
BAD_PAGE_QUERIES = [
    ("limit zero", "/api/v1/audit?limit=0", f"query.limit: {GREATER_OR_EQUAL} 1"),
    (
        "limit too big",
        "/api/v1/audit?limit=1001",
        "query.limit: Input should be less than or equal to 1000",
    ),
    (
        "limit non-numeric",
        "/api/v1/audit?limit=all",
        "query.limit: Input should be a valid integer",
    ),
    (
        "cursor negative",
        "/api/v1/audit?cursor=-1",
        f"query.cursor: {GREATER_OR_EQUAL} 0",
    ),
    (
        "cursor non-numeric",
        "/api/v1/alerts?cursor=next",
        "query.cursor: Input should be a valid integer",
    ),
    (
        "alerts limit zero",
        "/api/v1/alerts?limit=0",
        f"query.limit: {GREATER_OR_EQUAL} 1",
    ),
    (
        "since non-numeric",
        "/api/v1/audit?since=today",
        "query.since: Input should be a valid number",
    ),
    (
        "cursor past the largest SQLite integer",
        "/api/v1/audit?cursor=9223372036854775808",
        "query.cursor: Input should be less than or equal to 9223372036854775807",
    ),
    (
        "run id past the largest SQLite integer",
        "/api/v1/runs/9223372036854775808",
        "path.run_id: Input should be less than or equal to 9223372036854775807",
    ),
    (
        "version past the largest SQLite integer",
        "/api/v1/models/shuttle/versions/9223372036854775808",
        "path.number: Input should be less than or equal to 9223372036854775807",
    ),
]


@pytest.mark.parametrize(
    "path, expected",
    [case[1:] for case in BAD_PAGE_QUERIES],
    ids=[case[0] for case in BAD_PAGE_QUERIES],
)
def test_bad_page_query_names_parameter(
    agent: RunningAgent, path: str, expected: str
) -> None:
    with agent.client("viewer") as client:
        response = client.get(path)

    error = _error(response)
    assert response.status_code == 422
    assert error["code"] == "invalid_request"
    assert expected in error["message"]


def test_oversized_body_with_content_length_is_413(admin: httpx.Client) -> None:
    before = _state(admin)
    body = (
        b'{"name": "big", "role": "viewer", "reason": "' + b"x" * MAX_BODY_BYTES + b'"}'
    )

    response = admin.post(
        "/api/v1/tokens", content=body, headers={"Content-Type": "application/json"}
    )

    error = _error(response)
    assert response.status_code == 413
    assert error["code"] == "payload_too_large"
    assert (
        f"the limit is {MAX_BODY_BYTES} bytes (api.max_body_bytes" in error["message"]
    )
    assert _state(admin) == before


def test_oversized_chunked_body_is_413(admin: httpx.Client) -> None:
    before = _state(admin)

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "big", "role": "viewer", "reason": "'
        for _ in range(8):
            yield b"x" * 1024
        yield b'"}'

    # A generator body has no Content-Length, so httpx sends it chunked.
    response = admin.post(
        "/api/v1/tokens", content=chunks(), headers={"Content-Type": "application/json"}
    )

    error = _error(response)
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 413
    assert error["code"] == "payload_too_large"
    assert f"the limit is {MAX_BODY_BYTES} bytes" in error["message"]
    assert _state(admin) == before


def test_body_at_limit_is_accepted(admin: httpx.Client) -> None:
    name = f"fits-{time.monotonic_ns()}"
    prefix = f'{{"name": "{name}", "role": "viewer", "reason": "'.encode()
    body = prefix + b"x" * (MAX_BODY_BYTES - len(prefix) - 2) + b'"}'

    # The reason is over its 2000-character limit, so the body reaches
    # validation (422), past the size check (413).
    response = admin.post(
        "/api/v1/tokens", content=body, headers={"Content-Type": "application/json"}
    )

    assert len(body) == MAX_BODY_BYTES
    assert response.status_code == 422
    assert (
        "reason: String should have at most 2000 characters"
        in _error(response)["message"]
    )


@pytest.mark.parametrize(
    "body, expected",
    [
        (b"{", "The request body is not valid JSON: Expecting property name"),
        (
            b'{"name": "x", "role": ',
            "The request body is not valid JSON: Expecting value",
        ),
        (b"[]", "body: Input should be a valid dictionary"),
    ],
    ids=["truncated object", "missing value", "array"],
)
def test_malformed_json_names_problem(
    admin: httpx.Client, body: bytes, expected: str
) -> None:
    before = _state(admin)

    response = admin.post(
        "/api/v1/tokens", content=body, headers={"Content-Type": "application/json"}
    )

    error = _error(response)
    assert response.status_code == 422
    assert error["code"] == "invalid_request"
    assert expected in error["message"]
    assert _state(admin) == before


def test_body_without_json_content_type_is_422(admin: httpx.Client) -> None:
    response = admin.post(
        "/api/v1/tokens", content=b"name=x", headers={"Content-Type": "text/plain"}
    )

    assert response.status_code == 422
    assert _error(response)["message"] == (
        "The request body must be a JSON object sent with "
        "'Content-Type: application/json'."
    )


@pytest.mark.parametrize(
    "payload, expected",
    [
        ({"name": "../x", "role": "viewer"}, "name: String should match pattern"),
        ({"name": "a/b", "role": "viewer"}, "name: String should match pattern"),
        ({"name": "ok", "role": "root"}, "role: String should match pattern"),
        ({"name": "ok", "role": "viewer", "scope": "all"}, "scope: Extra inputs"),
        ({"role": "viewer"}, "name: Field required"),
    ],
    ids=["parent path", "slash", "unknown role", "unknown field", "missing name"],
)
def test_invalid_token_request_names_field(
    admin: httpx.Client, payload: dict, expected: str
) -> None:
    before = _state(admin)

    response = admin.post("/api/v1/tokens", json=payload)

    error = _error(response)
    assert response.status_code == 422
    assert expected in error["message"]
    assert _state(admin) == before


def test_name_with_path_in_url_is_rejected(admin: httpx.Client) -> None:
    before = _state(admin)

    encoded_slash = admin.delete("/api/v1/tokens/..%2Fx")
    dot_dot = admin.delete("/api/v1/tokens/..x")

    assert encoded_slash.status_code == 404
    assert _error(encoded_slash)["code"] == "not_found"
    assert dot_dot.status_code == 422
    assert "path.name: String should match pattern" in _error(dot_dot)["message"]
    assert _state(admin) == before


def test_bad_alert_id_is_named(agent: RunningAgent) -> None:
    with agent.client("operator") as client:
        text = client.post("/api/v1/alerts/first/ack")
        zero = client.post("/api/v1/alerts/0/ack")
        missing = client.post("/api/v1/alerts/999999/ack")

    assert text.status_code == 422
    assert "path.alert_id: Input should be a valid integer" in _error(text)["message"]
    assert zero.status_code == 422
    assert (
        "path.alert_id: Input should be greater than or equal to 1"
        in (_error(zero)["message"])
    )
    assert missing.status_code == 404
    assert _error(missing)["message"] == "No alert with id 999999."


def test_duplicate_token_name_is_409(admin: httpx.Client) -> None:
    name = f"dup-{time.monotonic_ns()}"
    first = admin.post("/api/v1/tokens", json={"name": name, "role": "viewer"})
    before = _state(admin)

    second = admin.post("/api/v1/tokens", json={"name": name, "role": "admin"})

    assert first.status_code == 201
    assert second.status_code == 409
    assert _error(second) == {
        "code": "conflict",
        "message": f"A token named {name!r} exists; pick another name.",
    }
    assert _state(admin) == before
