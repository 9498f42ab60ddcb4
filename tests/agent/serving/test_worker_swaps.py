"""Traffic split, atomic swaps under load, and versions that fail to load."""

from __future__ import annotations

import collections
import threading
from pathlib import Path

import httpx
import numpy as np
from harness import wait_for
from serving_helpers import add_version, deploy, expected_probabilities, infer_body

from store import audit
from store import deployments as deployment_rows
from store import versions as version_rows

ROW = [[0.5, -1.0, 2.0]]


def _served_versions(client) -> tuple[str, ...]:
    return tuple(client.get("/v2/models/m").json()["versions"])


class _Load:
    """Threads that send one-row requests until stopped, recording every response."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.answers: list[tuple[int, str | None, list[float] | None]] = []
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

    def count(self) -> int:
        return len(self.answers)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post("/v2/models/m/infer", json=infer_body(ROW))
                except httpx.HTTPError as error:
                    self.errors.append(repr(error))
                    continue
                body = response.json()
                if response.status_code != 200:
                    self.answers.append((response.status_code, None, None))
                    continue
                self.answers.append(
                    (200, body["model_version"], body["outputs"][1]["data"])
                )


def test_swaps_under_load_fail_no_request(worker_factory):
    def prepare(store, config):
        for seed in (1, 2, 3):
            add_version(store, config.data_dir, "m", seed=seed)
        deploy(store, "m", 1)

    worker = worker_factory(prepare)
    store = worker.store
    versions = {v: version_rows.get_version(store.db, "m", v) for v in (1, 2, 3)}
    # Version 3's weights are cut short after registration, as by a full disk.
    weights = Path(versions[3]["artifact_path"]) / "model.pt"
    weights.write_bytes(weights.read_bytes()[:200])
    expected = {
        str(number): expected_probabilities(versions[number], ROW).ravel()
        for number in (1, 2)
    }
    client = worker.client()
    # (stable, canary, weight) for each of the ten swaps; the sixth points the
    # canary at the broken version 3.
    swaps = [
        (1, 2, 0.5), (1, None, 0.0), (2, 1, 0.5), (2, None, 0.0), (1, 2, 0.3),
        (1, 3, 0.5), (1, 2, 0.5), (2, None, 0.0), (2, 1, 0.2), (1, None, 0.0),
    ]  # fmt: skip

    with _Load(worker.url) as load:
        for stable, canary, weight in swaps:
            start = load.count()
            with store.write() as db:
                db.conn.execute(
                    "UPDATE deployments SET stable_version = ?, canary_version = ?, "
                    "canary_weight = ? WHERE model = ?",
                    (stable, canary, weight, "m"),
                )
            wanted = tuple(str(v) for v in (stable, canary) if v and v != 3)
            wait_for(lambda w=wanted: _served_versions(client) == w, what=f"{wanted}")
            wait_for(lambda s=start: load.count() > s + 50, what="requests after swap")

    statuses = collections.Counter(status for status, _, _ in load.answers)
    assert load.errors == []
    assert statuses == {200: len(load.answers)}
    assert len(load.answers) > 500
    answered_by = collections.Counter(version for _, version, _ in load.answers)
    assert set(answered_by) == {"1", "2"}
    for _, version, data in load.answers:
        assert np.array_equal(np.float32(data), expected[version])
    broken = version_rows.get_version(store.db, "m", 3)
    assert broken["load_error"].startswith("Version 3 of model 'm' failed to load: ")
    assert "was truncated or replaced" in broken["load_error"]
    entries = [
        e
        for e in audit.list_entries(store.db, limit=1000)
        if e["actor"] == "serving-worker"
    ]
    assert [(e["action"], e["target"]) for e in entries] == [
        ("version.load_failed", "model/m/version/3")
    ]


def test_broken_stable_keeps_previous_version(worker_factory, tmp_path):
    def prepare(store, config):
        for seed in (1, 2):
            add_version(store, config.data_dir, "m", seed=seed)
        deploy(store, "m", 1)

    worker = worker_factory(prepare, directory=tmp_path / "agent")
    client = worker.client()
    version = version_rows.get_version(worker.store.db, "m", 2)
    (Path(version["artifact_path"]) / "manifest.json").unlink()

    with worker.store.write() as db:
        deployment_rows.promote(db, "m", 2, release_id=None, actor="test", reason="x")
    wait_for(
        lambda: version_rows.get_version(worker.store.db, "m", 2)["load_error"],
        what="the load error of version 2",
    )
    response = client.post("/v2/models/m/infer", json=infer_body(ROW))
    metadata = client.get("/v2/models/m").json()

    assert response.status_code == 200
    assert response.json()["model_version"] == "1"
    assert metadata["parameters"]["stable_version"] == 1
    assert (
        "has no manifest.json"
        in version_rows.get_version(worker.store.db, "m", 2)["load_error"]
    )

    # A worker started on that deployment has no earlier version to keep.
    worker.stop()
    restarted = worker_factory(directory=tmp_path / "agent")
    client = restarted.client()
    response = client.post("/v2/models/m/infer", json=infer_body(ROW))
    ready = client.get("/v2/health/ready")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    assert "has no manifest.json" in response.json()["error"]["message"]
    assert ready.status_code == 503
    assert ready.json()["ready"] is False


def test_restart_restores_deployment_and_log(worker_factory, tmp_path):
    def prepare(store, config):
        for seed in (1, 2):
            add_version(store, config.data_dir, "m", seed=seed)
        deploy(store, "m", 2, canary=1, weight=0.5)

    first = worker_factory(prepare, directory=tmp_path / "agent")
    client = first.client()
    assert _served_versions(client) == ("2", "1")
    client.post("/v2/models/m/infer", json=infer_body(ROW * 2, id="old"))
    wait_for(
        lambda: (
            first.store.db.conn.execute(
                "SELECT COUNT(*) FROM predictions WHERE request_id LIKE 'old/%'"
            ).fetchone()[0]
            == 2
        ),
        what="the logged rows of request old",
    )
    first.stop()

    second = worker_factory(directory=tmp_path / "agent")
    client = second.client()
    metadata = client.get("/v2/models/m").json()
    feedback = client.post(
        "/v2/models/m/feedback", json={"id": "old", "labels": [0, 1]}
    )

    assert metadata["versions"] == ["2", "1"]
    assert metadata["parameters"]["canary_weight"] == 0.5
    assert feedback.status_code == 200
    assert feedback.json()["labels"] == 2
