"""The role ladder on a real agent: every caller against every kind of endpoint."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from harness import RunningAgent, start_agent, wait_for, write_config

from store import Store, alerts

CALLERS = (
    "none",
    "bad token",
    "revoked token",
    "viewer",
    "operator",
    "approver",
    "admin",
)

# The role each kind of endpoint needs and the status it returns on success.
ENDPOINTS = {
    "viewer read": ("viewer", 200),
    "operator action": ("operator", 200),
    "admin action": ("admin", 201),
    "metrics": ("viewer", 200),
}

RANK = {"viewer": 0, "operator": 1, "approver": 2, "admin": 3}

NO_TOKEN_MESSAGE = (
    "This endpoint needs a bearer token: send 'Authorization: Bearer <token>'. "
    "Create one with `rigdeck-agent token create NAME --role viewer`."
)
INVALID_TOKEN_MESSAGE = (
    "The bearer token is unknown or revoked. Ask an admin for a new one "
    "(`rigdeck-agent token create`)."
)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    agent = start_agent(write_config(tmp_path_factory.mktemp("auth")))
    with agent.client("admin") as admin:
        created = admin.post(
            "/api/v1/tokens", json={"name": "to-revoke", "role": "admin"}
        )
        admin.delete("/api/v1/tokens/to-revoke").raise_for_status()
    agent.tokens["revoked token"] = created.json()["token"]
    agent.tokens["bad token"] = "rdk_" + "A" * 43
    yield agent
    agent.stop()


@pytest.fixture(scope="module")
def alert_id(agent: RunningAgent) -> int:
    store = Store(agent.data_dir / "store.db")
    with store.write() as db:
        new_id = alerts.raise_alert(
            db, kind="test", severity="warning", source="auth matrix", message="ack me"
        )
    store.close()
    return new_id


def _call(
    agent: RunningAgent, caller: str, endpoint: str, alert_id: int
) -> httpx.Response:
    role = None if caller == "none" else caller
    with agent.client(role) as client:
        requests: dict[str, Callable[[], httpx.Response]] = {
            "viewer read": lambda: client.get("/api/v1/host"),
            "operator action": lambda: client.post(
                f"/api/v1/alerts/{alert_id}/ack", json={"reason": "seen"}
            ),
            "admin action": lambda: client.post(
                "/api/v1/tokens",
                json={"name": f"m-{uuid.uuid4().hex[:12]}", "role": "viewer"},
            ),
            "metrics": lambda: client.get("/metrics"),
        }
        return requests[endpoint]()


@pytest.mark.parametrize(
    "caller, endpoint",
    list(itertools.product(CALLERS, ENDPOINTS)),
    ids=[
        f"{caller}-{endpoint}"
        for caller, endpoint in itertools.product(CALLERS, ENDPOINTS)
    ],
)
def test_status_for_caller_and_endpoint(
    agent: RunningAgent, alert_id: int, caller: str, endpoint: str
) -> None:
    needed, success = ENDPOINTS[endpoint]

    response = _call(agent, caller, endpoint, alert_id)

    if caller == "none":
        assert response.status_code == 401
        assert response.json() == {
            "error": {"code": "unauthenticated", "message": NO_TOKEN_MESSAGE}
        }
    elif caller in ("bad token", "revoked token"):
        assert response.status_code == 401
        assert response.json() == {
            "error": {"code": "invalid_token", "message": INVALID_TOKEN_MESSAGE}
        }
    elif RANK[caller] < RANK[needed]:
        token_name = _token_name(agent, caller)
        assert response.status_code == 403
        assert response.json() == {
            "error": {
                "code": "forbidden",
                "message": f"This action needs the {needed} role or higher; the token "
                f"{token_name!r} has the {caller} role.",
            }
        }
    else:
        assert response.status_code == success, response.text


def _token_name(agent: RunningAgent, role: str) -> str:
    with agent.client("admin") as admin:
        rows = admin.get("/api/v1/tokens").json()["items"]
    names = [row["name"] for row in rows if row["name"].startswith(f"test-{role}-")]
    assert len(names) == 1
    return names[0]


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Token rdk_abc"],
    ids=["basic scheme", "no token", "other scheme"],
)
def test_malformed_authorization_header_is_401(
    agent: RunningAgent, header: str
) -> None:
    response = httpx.get(f"{agent.url}/api/v1/host", headers={"Authorization": header})

    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "unauthenticated",
            "message": "The Authorization header must be 'Bearer <token>'.",
        }
    }


def test_token_list_never_shows_secrets(agent: RunningAgent) -> None:
    with agent.client("admin") as admin:
        response = admin.get("/api/v1/tokens")

    text = response.text
    assert response.status_code == 200
    for secret in agent.tokens.values():
        assert secret not in text
    assert "token_sha256" not in text


def test_created_token_is_shown_once_and_works(agent: RunningAgent) -> None:
    name = f"new-{uuid.uuid4().hex[:12]}"
    with agent.client("admin") as admin:
        created = admin.post("/api/v1/tokens", json={"name": name, "role": "operator"})
        listed = admin.get("/api/v1/tokens").json()["items"]
    secret = created.json()["token"]

    response = httpx.get(
        f"{agent.url}/api/v1/host", headers={"Authorization": f"Bearer {secret}"}
    )

    assert created.status_code == 201
    assert created.json()["role"] == "operator"
    assert [row for row in listed if row["name"] == name][0].get("token") is None
    assert response.status_code == 200


def test_revoked_token_stops_working_at_once(agent: RunningAgent) -> None:
    name = f"short-{uuid.uuid4().hex[:12]}"
    with agent.client("admin") as admin:
        secret = admin.post(
            "/api/v1/tokens", json={"name": name, "role": "viewer"}
        ).json()["token"]
        with httpx.Client(
            base_url=agent.url, headers={"Authorization": f"Bearer {secret}"}
        ) as client:
            before = client.get("/api/v1/host").status_code
            revoked = admin.delete(f"/api/v1/tokens/{name}")
            after = client.get("/api/v1/host").status_code

    assert before == 200
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert after == 401


def test_open_metrics_needs_no_token(
    tmp_path: Path, agent_factory: Callable[..., RunningAgent]
) -> None:
    directory = tmp_path / "open-metrics"
    config = write_config(directory)
    config.write_text(
        config.read_text().replace("[api]\n", "[api]\nmetrics_open = true\n")
    )
    agent = agent_factory(directory=directory)

    metrics = wait_for(
        lambda: _sampled_metrics(agent),
        timeout=30,
        what="/metrics without a token to show the first sample",
    )
    host = httpx.get(f"{agent.url}/api/v1/host")

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert host.status_code == 401


def _sampled_metrics(agent: RunningAgent) -> httpx.Response | None:
    response = httpx.get(f"{agent.url}/metrics")
    response.raise_for_status()
    return response if "rigdeck_memory_total_bytes " in response.text else None
