"""Audit entries for every state change, and tampering found by CLI and API alike."""

from __future__ import annotations

import getpass
import sqlite3
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from harness import RunningAgent, agent_cli, start_agent, write_config

from store import Store, alerts


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    agent = start_agent(write_config(tmp_path_factory.mktemp("audit")))
    yield agent
    agent.stop()


@pytest.fixture
def admin(agent: RunningAgent) -> Iterator[httpx.Client]:
    with agent.client("admin") as client:
        yield client


def _entries(agent: RunningAgent) -> list[dict]:
    with agent.client("viewer") as client:
        return client.get("/api/v1/audit", params={"limit": 1000}).json()["items"]


def _new_entries(agent: RunningAgent, before: list[dict]) -> list[dict]:
    return _entries(agent)[len(before) :]


def _token_name(agent: RunningAgent, role: str) -> str:
    with agent.client("admin") as admin:
        rows = admin.get("/api/v1/tokens").json()["items"]
    return next(row["name"] for row in rows if row["name"].startswith(f"test-{role}-"))


def _raise_alert(agent: RunningAgent) -> int:
    store = Store(agent.data_dir / "store.db")
    with store.write() as db:
        alert_id = alerts.raise_alert(
            db,
            kind="test",
            severity="critical",
            source="audit test",
            message=uuid.uuid4().hex,
        )
    store.close()
    return alert_id


def test_api_token_create_writes_one_entry(
    agent: RunningAgent, admin: httpx.Client
) -> None:
    before = _entries(agent)
    name = f"ci-{uuid.uuid4().hex[:8]}"

    response = admin.post(
        "/api/v1/tokens", json={"name": name, "role": "viewer", "reason": "for CI"}
    )

    assert response.status_code == 201
    new = _new_entries(agent, before)
    assert len(new) == 1
    assert new[0]["actor"] == _token_name(agent, "admin")
    assert new[0]["action"] == "token.create"
    assert new[0]["target"] == f"token/{name}"
    assert new[0]["reason"] == "for CI"
    assert new[0]["after"] == {"role": "viewer"}
    assert response.json()["token"] not in str(new[0])


def test_api_token_revoke_writes_one_entry(
    agent: RunningAgent, admin: httpx.Client
) -> None:
    name = f"ci-{uuid.uuid4().hex[:8]}"
    admin.post(
        "/api/v1/tokens", json={"name": name, "role": "viewer"}
    ).raise_for_status()
    before = _entries(agent)

    response = admin.delete(f"/api/v1/tokens/{name}")

    assert response.status_code == 200
    new = _new_entries(agent, before)
    assert len(new) == 1
    assert new[0]["actor"] == _token_name(agent, "admin")
    assert new[0]["action"] == "token.revoke"
    assert new[0]["target"] == f"token/{name}"
    assert new[0]["before"] == {"revoked": False}
    assert new[0]["after"] == {"revoked": True}


def test_api_alert_ack_writes_one_entry(agent: RunningAgent) -> None:
    alert_id = _raise_alert(agent)
    before = _entries(agent)

    with agent.client("operator") as operator:
        response = operator.post(
            f"/api/v1/alerts/{alert_id}/ack", json={"reason": "on it"}
        )

    operator_name = _token_name(agent, "operator")
    assert response.status_code == 200
    assert response.json()["acknowledged_by"] == operator_name
    new = _new_entries(agent, before)
    assert len(new) == 1
    assert new[0]["actor"] == operator_name
    assert new[0]["action"] == "alert.acknowledge"
    assert new[0]["target"] == f"alert/{alert_id}"
    assert new[0]["reason"] == "on it"
    assert new[0]["before"] == {"acknowledged_by": None}
    assert new[0]["after"] == {"acknowledged_by": operator_name}


def test_repeated_changes_write_no_entry(
    agent: RunningAgent, admin: httpx.Client
) -> None:
    alert_id = _raise_alert(agent)
    name = f"ci-{uuid.uuid4().hex[:8]}"
    admin.post(
        "/api/v1/tokens", json={"name": name, "role": "viewer"}
    ).raise_for_status()
    admin.delete(f"/api/v1/tokens/{name}").raise_for_status()
    admin.post(f"/api/v1/alerts/{alert_id}/ack").raise_for_status()
    before = _entries(agent)

    second_revoke = admin.delete(f"/api/v1/tokens/{name}")
    second_ack = admin.post(f"/api/v1/alerts/{alert_id}/ack")

    assert second_revoke.status_code == 200
    assert second_ack.status_code == 200
    assert _new_entries(agent, before) == []


def test_rejected_requests_write_no_entry(
    agent: RunningAgent, admin: httpx.Client
) -> None:
    name = f"ci-{uuid.uuid4().hex[:8]}"
    admin.post(
        "/api/v1/tokens", json={"name": name, "role": "viewer"}
    ).raise_for_status()
    before = _entries(agent)

    with agent.client("viewer") as viewer:
        forbidden = viewer.post("/api/v1/tokens", json={"name": "x1", "role": "admin"})
        forbidden_ack = viewer.post("/api/v1/alerts/1/ack")
    duplicate = admin.post("/api/v1/tokens", json={"name": name, "role": "admin"})
    unknown_alert = admin.post("/api/v1/alerts/999999/ack")
    unknown_token = admin.delete("/api/v1/tokens/no-such-token")

    assert forbidden.status_code == 403
    assert forbidden_ack.status_code == 403
    assert duplicate.status_code == 409
    assert unknown_alert.status_code == 404
    assert unknown_token.status_code == 404
    assert _new_entries(agent, before) == []


def test_cli_token_create_writes_one_entry(agent: RunningAgent) -> None:
    before = _entries(agent)
    name = f"cli-{uuid.uuid4().hex[:8]}"

    agent_cli(agent.config, "token", "create", name, "--role", "approver")

    new = _new_entries(agent, before)
    assert len(new) == 1
    assert new[0]["actor"] == f"cli:{getpass.getuser()}"
    assert new[0]["action"] == "token.create"
    assert new[0]["target"] == f"token/{name}"
    assert new[0]["after"] == {"role": "approver"}


def test_cli_token_revoke_writes_one_entry(agent: RunningAgent) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    agent_cli(agent.config, "token", "create", name, "--role", "viewer")
    before = _entries(agent)

    agent_cli(agent.config, "token", "revoke", name)
    agent_cli(agent.config, "token", "revoke", name)

    new = _new_entries(agent, before)
    assert len(new) == 1
    assert new[0]["actor"] == f"cli:{getpass.getuser()}"
    assert new[0]["action"] == "token.revoke"
    assert new[0]["target"] == f"token/{name}"


def test_cli_reads_write_no_entry(agent: RunningAgent) -> None:
    before = _entries(agent)

    agent_cli(agent.config, "token", "list")
    agent_cli(agent.config, "audit", "verify")

    assert _new_entries(agent, before) == []


def test_cli_token_output_file_is_private(agent: RunningAgent, tmp_path: Path) -> None:
    output = tmp_path / "token"
    name = f"cli-{uuid.uuid4().hex[:8]}"

    result = agent_cli(
        agent.config,
        "token",
        "create",
        name,
        "--role",
        "viewer",
        "--output",
        str(output),
    )

    secret = output.read_text().strip()
    assert output.stat().st_mode & 0o777 == 0o600
    assert secret.startswith("rdk_")
    assert secret not in result.stdout
    assert secret not in result.stderr
    assert (
        httpx.get(
            f"{agent.url}/api/v1/host", headers={"Authorization": f"Bearer {secret}"}
        ).status_code
        == 200
    )


def test_audit_pages_follow_cursor(agent: RunningAgent, admin: httpx.Client) -> None:
    for _ in range(3):
        name = f"page-{uuid.uuid4().hex[:8]}"
        admin.post(
            "/api/v1/tokens", json={"name": name, "role": "viewer"}
        ).raise_for_status()
    every_id = [entry["id"] for entry in _entries(agent)]

    with agent.client("viewer") as client:
        first = client.get("/api/v1/audit", params={"limit": 2}).json()
        second = client.get(
            "/api/v1/audit", params={"limit": 2, "cursor": first["next_cursor"]}
        ).json()
        last = client.get(
            "/api/v1/audit", params={"limit": 1000, "cursor": every_id[-2]}
        ).json()

    assert [entry["id"] for entry in first["items"]] == every_id[:2]
    assert first["next_cursor"] == every_id[1]
    assert [entry["id"] for entry in second["items"]] == every_id[2:4]
    assert [entry["id"] for entry in last["items"]] == every_id[-1:]
    assert last["next_cursor"] is None


CONCURRENT_REQUESTS = 8


def test_concurrent_acks_write_one_entry(agent: RunningAgent) -> None:
    alert_id = _raise_alert(agent)
    before = _entries(agent)

    def acknowledge(_: int) -> int:
        with agent.client("operator") as operator:
            return operator.post(f"/api/v1/alerts/{alert_id}/ack").status_code

    with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
        statuses = list(pool.map(acknowledge, range(CONCURRENT_REQUESTS)))

    assert statuses == [200] * CONCURRENT_REQUESTS
    new = _new_entries(agent, before)
    assert len(new) == 1
    assert new[0]["target"] == f"alert/{alert_id}"


def test_concurrent_same_name_creates_one_token(agent: RunningAgent) -> None:
    name = f"race-{uuid.uuid4().hex[:8]}"
    before = _entries(agent)

    def create(_: int) -> int:
        with agent.client("admin") as admin:
            payload = {"name": name, "role": "viewer"}
            return admin.post("/api/v1/tokens", json=payload).status_code

    with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
        statuses = sorted(pool.map(create, range(CONCURRENT_REQUESTS)))

    assert statuses == [201] + [409] * (CONCURRENT_REQUESTS - 1)
    new = _new_entries(agent, before)
    assert len(new) == 1
    assert new[0]["target"] == f"token/{name}"


@pytest.fixture
def chain(agent: RunningAgent, admin: httpx.Client) -> Iterator[Path]:
    """The store file with at least five audit entries, restored after tampering."""
    while len(_entries(agent)) < 5:
        name = f"pad-{uuid.uuid4().hex[:8]}"
        admin.post(
            "/api/v1/tokens", json={"name": name, "role": "viewer"}
        ).raise_for_status()
    path = agent.data_dir / "store.db"
    with sqlite3.connect(path) as conn:
        entries = conn.execute("SELECT * FROM audit_entries").fetchall()
        head = conn.execute("SELECT * FROM audit_head").fetchall()
    yield path
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM audit_entries")
        conn.executemany(
            f"INSERT INTO audit_entries VALUES ({', '.join('?' * len(entries[0]))})",
            entries,
        )
        conn.execute("DELETE FROM audit_head")
        conn.executemany("INSERT INTO audit_head VALUES (?, ?, ?)", head)


def _tamper(path: Path, sql: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(sql)


def _verify_both(agent: RunningAgent) -> tuple[object, dict]:
    """Run `rigdeck-agent audit verify` and GET /api/v1/audit/verify."""
    cli = agent_cli(agent.config, "audit", "verify", check=False)
    with agent.client("viewer") as client:
        api = client.get("/api/v1/audit/verify").json()
    return cli, api


def _last_id(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT MAX(id) FROM audit_entries").fetchone()[0]


def test_cli_and_api_verify_intact_chain(agent: RunningAgent, chain: Path) -> None:
    count = _last_id(chain)

    cli, api = _verify_both(agent)

    assert cli.returncode == 0
    assert cli.stdout.strip() == f"The audit chain of {count} entries verifies."
    assert api == {
        "ok": True,
        "checked": count,
        "first_bad_id": None,
        "message": f"The audit chain of {count} entries verifies.",
    }


def test_cli_and_api_name_edited_entry(agent: RunningAgent, chain: Path) -> None:
    _tamper(chain, "UPDATE audit_entries SET actor = 'mallory' WHERE id = 3")

    cli, api = _verify_both(agent)

    assert cli.returncode == 1
    assert cli.stderr.startswith("FAILED: Audit entry 3 was modified")
    assert api["ok"] is False
    assert api["first_bad_id"] == 3
    assert api["message"].startswith("Audit entry 3 was modified")


def test_cli_and_api_name_deleted_middle(agent: RunningAgent, chain: Path) -> None:
    _tamper(chain, "DELETE FROM audit_entries WHERE id = 3")

    cli, api = _verify_both(agent)

    assert cli.returncode == 1
    assert cli.stderr.startswith("FAILED: Audit entry 3 is missing (deleted)")
    assert api["ok"] is False
    assert api["first_bad_id"] == 3
    assert api["message"].startswith("Audit entry 3 is missing (deleted)")


def test_cli_and_api_detect_deleted_last(agent: RunningAgent, chain: Path) -> None:
    last = _last_id(chain)
    _tamper(chain, f"DELETE FROM audit_entries WHERE id = {last}")

    cli, api = _verify_both(agent)

    expected = (
        f"Audit entries after {last - 1} are missing: the log head records entry {last}"
    )
    assert cli.returncode == 1
    assert cli.stderr.startswith(f"FAILED: {expected}")
    assert api["ok"] is False
    assert api["first_bad_id"] == last
    assert api["message"].startswith(expected)
