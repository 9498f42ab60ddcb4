"""Releases, deployments and rollback through a real agent and its worker."""

from __future__ import annotations

import collections
import json
import threading
import time
from pathlib import Path

import httpx
from harness import agent_cli, wait_for
from serving_helpers import FAST_SERVING, add_version, infer_body, model_toml

from store import Store

ROW = [[0.5, -1.0, 2.0]]
RELEASE = "canary_weight = 0.25\nwindow_seconds = 3600\n"


def _agent(agent_factory, tmp_path: Path, versions: int = 2, release: str = RELEASE):
    """An agent whose model m has ``versions`` registered versions and no deployment."""
    directory = tmp_path / "agent"
    (directory / "data").mkdir(parents=True)
    store = Store(directory / "data" / "store.db")
    try:
        for seed in range(1, versions + 1):
            add_version(store, directory / "data", "m", seed=seed)
    finally:
        store.close()
    return agent_factory(
        extra_config=FAST_SERVING + model_toml("m", release), directory=directory
    )


def _token(agent, name: str, role: str) -> httpx.Client:
    token = agent_cli(agent.config, "token", "create", name, "--role", role).stdout
    return httpx.Client(
        base_url=agent.url, headers={"Authorization": f"Bearer {token.strip()}"}
    )


def _release(operator, approver, version: int) -> dict:
    created = operator.post(
        "/api/v1/releases", json={"model": "m", "version": version, "reason": "test"}
    )
    assert created.status_code == 201, created.text
    approved = approver.post(
        f"/api/v1/releases/{created.json()['id']}/approve", json={"reason": "ok"}
    )
    assert approved.status_code == 200, approved.text
    return approved.json()


def _worker_url(agent) -> str:
    def running():
        with agent.client("viewer") as client:
            status = client.get("/api/v1/serving").json()
        return status["url"] if status["state"] == "running" else None

    return wait_for(running, timeout=60, what="a running serving worker")


def _served(url: str) -> tuple[str, ...]:
    return tuple(httpx.get(f"{url}/v2/models/m").json()["versions"])


def test_release_canary_and_promotion(agent_factory, tmp_path):
    agent = _agent(agent_factory, tmp_path)
    operator, approver = agent.client("operator"), agent.client("approver")

    first = _release(operator, approver, 1)
    url = _worker_url(agent)
    wait_for(lambda: _served(url) == ("1",), what="version 1 served")
    second = _release(operator, approver, 2)
    wait_for(lambda: _served(url) == ("1", "2"), what="the canary served")
    with httpx.Client(base_url=url, timeout=30) as client:
        answered = collections.Counter(
            client.post("/v2/models/m/infer", json=infer_body(ROW)).json()[
                "model_version"
            ]
            for _ in range(2000)
        )
    promoted = approver.post(
        f"/api/v1/releases/{second['id']}/promote", json={"reason": "healthy"}
    )

    assert first["state"] == "promoted"
    assert second["state"] == "canary"
    assert 300 <= answered["2"] <= 700, answered
    assert answered["1"] + answered["2"] == 2000
    assert promoted.status_code == 200
    assert promoted.json()["state"] == "promoted"
    wait_for(lambda: _served(url) == ("2",), what="version 2 stable")
    deployments = agent.client("viewer").get("/api/v1/deployments").json()["items"]
    assert [
        (d["model"], d["stable_version"], d["rollback_version"]) for d in deployments
    ] == [("m", 2, 1)]
    listed = agent.client("viewer").get("/api/v1/releases").json()
    assert [r["id"] for r in listed["items"]] == [second["id"], first["id"]]
    assert listed["next_cursor"] is None
    audit = agent.client("viewer").get("/api/v1/audit", params={"limit": 1000}).json()
    actions = [
        (entry["action"], entry["target"])
        for entry in audit["items"]
        if entry["target"] == f"release/{second['id']}"
    ]
    assert actions == [
        ("release.request", f"release/{second['id']}"),
        ("release.approval", f"release/{second['id']}"),
        ("release.approve", f"release/{second['id']}"),
        ("release.start_canary", f"release/{second['id']}"),
        ("release.promote", f"release/{second['id']}"),
    ]
    assert agent.client("viewer").get("/api/v1/audit/verify").json()["ok"] is True


def test_four_eyes_and_simultaneous_approvers(agent_factory, tmp_path):
    agent = _agent(agent_factory, tmp_path, versions=1)
    requester = _token(agent, "rita", "approver")
    anna, bert = _token(agent, "anna", "approver"), _token(agent, "bert", "approver")
    created = requester.post(
        "/api/v1/releases", json={"model": "m", "version": 1, "reason": "mine"}
    ).json()

    own = requester.post(
        f"/api/v1/releases/{created['id']}/approve", json={"reason": "trust me"}
    )
    barrier = threading.Barrier(2)
    responses: dict[str, httpx.Response] = {}

    def approve(name: str, client: httpx.Client) -> None:
        barrier.wait()
        responses[name] = client.post(
            f"/api/v1/releases/{created['id']}/approve", json={"reason": "fine"}
        )

    threads = [
        threading.Thread(target=approve, args=("anna", anna)),
        threading.Thread(target=approve, args=("bert", bert)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert own.status_code == 403
    assert own.json()["error"] == {
        "code": "self_approval",
        "message": f"rita requested release {created['id']} and cannot also approve "
        "it; another approver must.",
    }
    statuses = sorted(response.status_code for response in responses.values())
    assert statuses == [200, 409]
    winner = next(r for r in responses.values() if r.status_code == 200).json()
    loser = next(r for r in responses.values() if r.status_code == 409).json()
    assert winner["state"] == "promoted"
    assert loser["error"]["code"] == "invalid_transition"
    release = agent.client("viewer").get(f"/api/v1/releases/{created['id']}").json()
    assert len(release["approvals"]) == 1
    audit = agent.client("viewer").get("/api/v1/audit", params={"limit": 1000}).json()
    approvals = [e for e in audit["items"] if e["action"] == "release.approve"]
    assert len(approvals) == 1


def test_bad_requests_change_nothing(agent_factory, tmp_path):
    agent = _agent(agent_factory, tmp_path, versions=1)
    store = Store(agent.data_dir / "store.db")
    try:
        add_version(store, agent.data_dir, "m", seed=2, gates_pass=False)
    finally:
        store.close()
    operator, approver = agent.client("operator"), agent.client("approver")
    pending = operator.post(
        "/api/v1/releases", json={"model": "m", "version": 1, "reason": "first"}
    ).json()
    rejected_id = pending["id"]
    approver.post(f"/api/v1/releases/{rejected_id}/reject", json={"reason": "no"})
    viewer = agent.client("viewer")
    audit_before = len(
        viewer.get("/api/v1/audit", params={"limit": 1000}).json()["items"]
    )
    releases, rejected = "/api/v1/releases", f"/api/v1/releases/{rejected_id}"
    reason = b'{"reason": "x"}'

    def body(**fields) -> bytes:
        return json.dumps(
            {"model": "m", "version": 1, "reason": "x", **fields}
        ).encode()

    cases = [
        (operator, releases, b'{"model": "m",', 422, "invalid_request",
         "The request body is not valid JSON"),
        (operator, releases, b'{"model": "m", "version": 1}', 422,
         "invalid_request", "reason: Field required"),
        (operator, releases, body(force=True), 422,
         "invalid_request", "force: Extra inputs are not permitted"),
        (operator, releases, body(model="nope"), 404, "not_found",
         "No model named 'nope'"),
        (operator, releases, body(version=9), 404, "not_found",
         "Model 'm' has no version 9"),
        (operator, releases, body(version=2), 409, "not_releasable",
         "Version 2 of 'm' cannot be released: Gates failed"),
        (operator, releases, body(model="../x"), 422, "invalid_request",
         "model: String should match pattern"),
        (approver, f"{rejected}/approve", reason, 409, "invalid_transition",
         f"Release {rejected_id} is rejected, so it cannot approve"),
        (approver, f"{rejected}/promote", reason, 409, "invalid_transition",
         "promote needs a release that is canary"),
        (approver, f"{releases}/999/abort", reason, 404, "not_found",
         "No release with id 999"),
        (approver, f"{rejected}/approve", b'{"reason": ""}', 422, "invalid_request",
         "reason: String should have at least 1 character"),
        (operator, f"{rejected}/approve", reason, 403, "forbidden",
         "This action needs the approver role or higher"),
        (operator, "/api/v1/models/m/rollback", reason, 409, "conflict",
         "Model 'm' serves nothing, so there is no rollback."),
        (operator, "/api/v1/models/nope/rollback", reason, 404, "not_found",
         "No model named 'nope'"),
        (viewer, "/api/v1/models/m/rollback", reason, 403, "forbidden",
         "This action needs the operator role or higher"),
    ]  # fmt: skip

    for client, path, body, status, code, message in cases:
        response = client.post(
            path, content=body, headers={"content-type": "application/json"}
        )

        assert response.status_code == status, (path, body, response.text)
        assert response.json()["error"]["code"] == code, (path, body)
        assert message in response.json()["error"]["message"], (path, body)

    audit_after = viewer.get("/api/v1/audit", params={"limit": 1000}).json()["items"]
    assert len(audit_after) == audit_before
    releases = viewer.get("/api/v1/releases").json()["items"]
    assert [(r["id"], r["state"]) for r in releases] == [(rejected_id, "rejected")]
    assert viewer.get("/api/v1/deployments").json() == {
        "items": [],
        "next_cursor": None,
    }
    serving = viewer.get("/api/v1/serving").json()
    assert serving["state"] == "idle"
    assert serving["pid"] is None
    assert not (agent.data_dir / "serving.json").exists()
    assert viewer.get("/api/v1/releases/999").status_code == 404
    assert viewer.get("/api/v1/releases", params={"state": "bogus"}).status_code == 422


class _Load:
    """Threads sending requests to the worker, recording (time, status, version)."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.answers: list[tuple[float, int, str | None]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post("/v2/models/m/infer", json=infer_body(ROW))
                except httpx.HTTPError as error:
                    self.errors.append(repr(error))
                    continue
                version = response.json().get("model_version")
                self.answers.append((time.monotonic(), response.status_code, version))


def test_rollback_under_load_and_restart(agent_factory, tmp_path):
    agent = _agent(agent_factory, tmp_path)
    operator, approver = agent.client("operator"), agent.client("approver")
    _release(operator, approver, 1)
    second = _release(operator, approver, 2)
    approver.post(f"/api/v1/releases/{second['id']}/promote", json={"reason": "ok"})
    url = _worker_url(agent)
    wait_for(lambda: _served(url) == ("2",), what="version 2 stable")

    with _Load(url) as load:
        wait_for(lambda: len(load.answers) > 200, what="load before the rollback")
        called = time.monotonic()
        response = operator.post(
            "/api/v1/models/m/rollback", json={"reason": "error rate doubled"}
        )
        returned = time.monotonic()
        wait_for(
            lambda: any(t > returned + 1.0 for t, _, _ in load.answers),
            what="load after the rollback",
        )

    assert response.status_code == 200, response.text
    assert response.json()["deployment"]["stable_version"] == 1
    assert load.errors == []
    assert {status for _, status, _ in load.answers} == {200}
    last_old = max(t for t, _, version in load.answers if version == "2")
    assert last_old - called < 1.0
    after = [version for t, _, version in load.answers if t > returned + 0.5]
    assert after
    assert set(after) == {"1"}
    release = agent.client("viewer").get(f"/api/v1/releases/{second['id']}").json()
    assert release["state"] == "rolled_back"
    assert release["state_reason"] == "error rate doubled"

    agent.stop()
    restarted = agent_factory(directory=agent.config.parent)
    url = _worker_url(restarted)
    deployments = restarted.client("viewer").get("/api/v1/deployments").json()["items"]

    assert deployments[0]["stable_version"] == 1
    assert deployments[0]["canary_version"] is None
    assert _served(url) == ("1",)
