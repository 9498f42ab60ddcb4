"""GET /api/v1/drift/monitors, /settings and /events on a real agent process.

One agent serves the whole module; its store gets one monitor row and
three drift events, written the way the drift service writes them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from drift_helpers import MODEL
from harness import RunningAgent, start_agent, write_config

from agent.drift import rows as drift_rows
from store import Store, alerts

MODEL_TOML = """
[[models]]
name = "shuttle"
[models.dataset]
plugin = "river"
options = { name = "Shuttle" }
[models.recipe]
plugin = "tabular-mlp"
[models.monitoring]
cooldown_rows = 700
[models.monitoring.features]
plugin = "page-hinkley"
options = { threshold = 20 }
"""


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    directory = tmp_path_factory.mktemp("drift-api")
    running = start_agent(write_config(directory, MODEL_TOML))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def event_ids(agent: RunningAgent) -> list[int]:
    return _write_monitor_and_events(agent, events=3)


def _write_monitor_and_events(agent: RunningAgent, events: int) -> list[int]:
    store = Store(agent.data_dir / "store.db")
    state = {
        "status": "drifting",
        "counts": {"accepted": 5000, "non_finite": 2, "skipped": 30, "events": 1},
        "pending": None,
        "last_confirmed_index": 4800,
        "last_event_index": 4100,
        "reference": {"xs": [0.0, 1.0], "ps": [0.0, 1.0], "mean": 46.9, "std": 12.9},
        "reference_source": "version",
        "warmup": [],
        "history_transformed": [0.5] * 30,
        "history_raw": [float(value) for value in range(30)],
    }
    ids = []
    with store.write() as db:
        drift_rows.save_monitor(
            db,
            model=MODEL,
            role="stable",
            version=3,
            signal="feature:f1",
            detector="page-hinkley",
            params={"detector": "page-hinkley", "confirm_z": 5.0},
            state=state,
        )
        for index in range(events):
            event_id = drift_rows.insert_event(
                db,
                model=MODEL,
                version=3,
                role="stable",
                signal="feature:f1",
                detector="page-hinkley",
                sample_index=4100 + index,
                ts=1000.0 + index,
                stats={"before": {"mean": 46.9}, "after": {"mean": 53.3}},
            )
            alert_id = alerts.raise_alert(
                db,
                kind="drift",
                severity="warning",
                source="model/shuttle/stable/feature:f1",
                message=f"Drift on feature:f1 (drift event {event_id}).",
            )
            drift_rows.link_alert(db, event_id, alert_id)
            ids.append(event_id)
    store.close()
    return ids


def test_monitors_show_state_settings_and_counts(agent, event_ids) -> None:
    with agent.client("viewer") as client:
        response = client.get("/api/v1/drift/monitors", params={"model": MODEL})

    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    [monitor] = body["items"]
    assert monitor["model"] == MODEL
    assert monitor["role"] == "stable"
    assert monitor["version"] == 3
    assert monitor["signal"] == "feature:f1"
    assert monitor["detector"] == "page-hinkley"
    assert monitor["status"] == "drifting"
    assert monitor["settings"] == {"detector": "page-hinkley", "confirm_z": 5.0}
    assert monitor["counts"]["non_finite"] == 2
    assert monitor["counts"]["skipped"] == 30
    assert monitor["recent_values"] == [float(value) for value in range(10, 30)]
    assert monitor["reference"] == {"source": "version", "mean": 46.9, "std": 12.9}
    assert monitor["last_event_index"] == 4100


def test_events_are_paged_oldest_first(agent, event_ids) -> None:
    ids = event_ids

    with agent.client("viewer") as client:
        first = client.get(
            "/api/v1/drift/events", params={"model": MODEL, "limit": 2}
        ).json()
        second = client.get(
            "/api/v1/drift/events",
            params={"model": MODEL, "limit": 2, "cursor": first["next_cursor"]},
        ).json()
        recent = client.get(
            "/api/v1/drift/events", params={"model": MODEL, "since": 1001.5}
        ).json()

    assert [event["id"] for event in first["items"]] == ids[:2]
    assert first["next_cursor"] == ids[1]
    assert [event["id"] for event in second["items"]] == ids[2:]
    assert second["next_cursor"] is None
    assert [event["id"] for event in recent["items"]] == ids[2:]
    event = first["items"][0]
    assert event["role"] == "stable"
    assert event["version"] == 3
    assert event["sample_index"] == 4100
    assert event["stats"]["after"]["mean"] == 53.3
    assert event["alert_id"] is not None


def test_drift_alert_acknowledgement_is_audited(agent, event_ids) -> None:
    with agent.client("viewer") as client:
        event = client.get("/api/v1/drift/events").json()["items"][0]

    with agent.client("operator") as client:
        acked = client.post(
            f"/api/v1/alerts/{event['alert_id']}/ack", json={"reason": "seen"}
        )
        audit = client.get(
            "/api/v1/audit", params={"actor": acked.json()["acknowledged_by"]}
        )

    assert event["id"] == event_ids[0]
    assert acked.status_code == 200
    entries = [e for e in audit.json()["items"] if e["action"] == "alert.acknowledge"]
    assert entries[0]["target"] == f"alert/{event['alert_id']}"
    assert entries[0]["reason"] == "seen"


@pytest.mark.parametrize(
    ("role", "path", "status", "code"),
    [
        (None, "/api/v1/drift/monitors", 401, "unauthenticated"),
        ("viewer", "/api/v1/drift/monitors?model=nosuch", 404, "not_found"),
        ("viewer", "/api/v1/drift/events?model=nosuch", 404, "not_found"),
        ("viewer", "/api/v1/drift/events?model=../etc", 422, None),
        ("viewer", "/api/v1/drift/events?since=-1", 422, None),
    ],
)
def test_bad_requests_are_rejected(
    agent, role: str | None, path: str, status: int, code: str | None
) -> None:
    with agent.client(role) as client:
        response = client.get(path)

    assert response.status_code == status
    if code is not None:
        assert response.json()["error"]["code"] == code


def test_settings_show_validated_configuration(agent) -> None:
    with agent.client("viewer") as client:
        response = client.get("/api/v1/drift/settings", params={"model": MODEL})

    assert response.status_code == 200
    [settings] = response.json()["items"]
    assert settings["model"] == MODEL
    assert settings["enabled"] is True
    assert settings["cooldown_rows"] == 700
    assert settings["features"] == {
        "plugin": "page-hinkley",
        "options": {
            "min_instances": 30,
            "delta": 0.005,
            "threshold": 20.0,
            "alpha": 0.9999,
            "mode": "both",
        },
    }
    assert settings["error"]["plugin"] == "hddm-a"
