"""The drift service on a real store: events, alerts, roles, overload, restarts."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from drift_helpers import MODEL, add_version, deploy, make_config
from harness import wait_for

from agent.config import ConfigError
from agent.drift import DriftEvent, DriftService, prediction_value
from agent.drift import rows as drift_rows
from agent.drift.monitor import MonitorStatus
from agent.drift.policies import RetrainOnDrift
from store import Store
from store import predictions as prediction_rows

SHIFT_ROW = 3000
WAIT_SECONDS = 60


class RecordingHook:
    def __init__(self) -> None:
        self.events: list[DriftEvent] = []

    def on_drift(self, event: DriftEvent) -> None:
        self.events.append(event)


@pytest.fixture
def service_factory(
    tmp_path: Path, store: Store
) -> Iterator[Callable[..., DriftService]]:
    started: list[DriftService] = []

    def factory(
        start: bool = True, drift: dict | None = None, **kwargs
    ) -> DriftService:
        settings = {"checkpoint_seconds": 0.2, "poll_seconds": 0.05, **(drift or {})}
        monitoring = kwargs.pop("monitoring", None)
        config = make_config(tmp_path, drift=settings, monitoring=monitoring)
        service = DriftService(store, config, **kwargs)
        if start:
            service.start()
            started.append(service)
        return service

    yield factory
    for service in started:
        service.stop()


@pytest.fixture
def stream(shuttle: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """8,000 shuffled Shuttle rows with f1 offset by half its std from row 3,000."""
    features, labels = shuttle
    order = np.random.default_rng(0).permutation(len(features))[:8000]
    rows = features[order].copy()
    rows[SHIFT_ROW:, 0] += 0.5 * features[:, 0].std()
    return rows, labels[order]


def _observe_all(
    service: DriftService,
    features: np.ndarray,
    labels: np.ndarray,
    version: int = 1,
    role: str | None = None,
) -> None:
    for row, label in zip(features.tolist(), labels.tolist(), strict=True):
        assert service.observe(MODEL, version, row, label, role=role)


def _events(store: Store) -> list[dict[str, Any]]:
    return drift_rows.list_events(store.db)


def test_shift_writes_event_alert_and_calls_hook(
    store: Store, shuttle_reference, stream, service_factory
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))
    hook = RecordingHook()
    service = service_factory()
    service.add_hook(hook)

    _observe_all(service, *stream)
    assert service.wait_idle(WAIT_SECONDS)

    events = _events(store)
    assert len(events) == 1
    event = events[0]
    assert event["model"] == MODEL
    assert event["version"] == 1
    assert event["role"] == "stable"
    assert event["signal"] == "feature:f1"
    assert event["detector"] == "adwin"
    assert SHIFT_ROW < event["sample_index"] <= SHIFT_ROW + 500
    assert event["ts"] == pytest.approx(time.time(), abs=WAIT_SECONDS)
    assert event["stats"]["after"]["mean"] > event["stats"]["before"]["mean"]
    alert = store.db.execute(
        "SELECT kind, severity, source, message FROM alerts WHERE id = ?",
        [event["alert_id"]],
    ).fetchone()
    assert alert[:3] == ("drift", "warning", "model/shuttle/stable/feature:f1")
    assert f"drift event {event['id']}" in alert[3]
    assert [hooked.id for hooked in hook.events] == [event["id"]]
    assert hook.events[0].alert_id == event["alert_id"]


def test_monitor_rows_show_state_after_checkpoint(
    store: Store, shuttle_reference, stream, service_factory
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))
    service = service_factory(monitoring={"cooldown_rows": 100_000})

    _observe_all(service, *stream)
    assert service.wait_idle(WAIT_SECONDS)
    service.stop()

    monitors = {row["signal"]: row for row in drift_rows.list_monitors(store.db, MODEL)}
    assert sorted(monitors) == sorted(
        [*(f"feature:f{i}" for i in range(1, 10)), "prediction", "error"]
    )
    f1 = monitors["feature:f1"]
    assert f1["role"] == "stable"
    assert f1["version"] == 1
    assert f1["detector"] == "adwin"
    assert f1["params"]["detector_options"]["delta"] == 0.002
    assert f1["state"]["status"] == MonitorStatus.DRIFTING
    assert f1["state"]["counts"]["accepted"] == 8000
    assert f1["state"]["counts"]["events"] == 1
    assert monitors["feature:f2"]["state"]["status"] == MonitorStatus.WATCHING
    assert monitors["error"]["detector"] == "hddm-a"


def test_undeployed_version_rows_are_counted(
    store: Store, shuttle_reference, stream, service_factory
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))
    add_version(store, shuttle_reference)
    service = service_factory()

    _observe_all(service, stream[0][:100], stream[1][:100], version=2)
    assert service.wait_idle(WAIT_SECONDS)

    assert service.unmonitored_rows[MODEL] == 100
    assert service.monitor_set(MODEL, "stable") is None


def test_invalid_rows_are_counted_per_feature(
    store: Store, shuttle_reference, service_factory
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))
    service = service_factory()

    service.observe(MODEL, 1, [1.0, 2.0], 0.0)
    service.observe(MODEL, 1, {"f1": 40.0, "f2": math.nan}, 0.0)
    service.observe(MODEL, 1, [40.0, 0, 80, 0, 36, 0, 38, 48, 10], None)
    assert service.wait_idle(WAIT_SECONDS)

    monitor_set = service.monitor_set(MODEL, "stable")
    f1, f2, f3 = monitor_set.features[:3]
    assert (f1.counts.invalid, f1.counts.accepted, f1.counts.non_finite) == (1, 2, 0)
    assert (f2.counts.invalid, f2.counts.accepted, f2.counts.non_finite) == (1, 1, 1)
    assert (f3.counts.invalid, f3.counts.accepted, f3.counts.non_finite) == (1, 1, 1)
    assert monitor_set.prediction.counts.non_finite == 1
    assert monitor_set.prediction.status is MonitorStatus.WARMING_UP


def test_overload_samples_and_counts_skipped_rows(
    store: Store, shuttle_reference, stream, service_factory
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))
    service = service_factory(
        start=False, drift={"queue_rows": 100, "sample_above": 0.5, "sample_every": 10}
    )
    features, labels = stream[0][:1000], stream[1][:1000]

    admitted = sum(
        service.observe(MODEL, 1, row, label, role="stable")
        for row, label in zip(features.tolist(), labels.tolist(), strict=True)
    )
    service.start()
    assert service.wait_idle(WAIT_SECONDS)
    service.stop()

    # 50 rows below the sampling mark, then one in ten until 100 are queued.
    assert admitted == 100
    monitor_set = service.monitor_set(MODEL, "stable")
    for monitor in monitor_set.features:
        assert monitor.counts.accepted == 100, monitor.signal
        assert monitor.counts.skipped == 900, monitor.signal
    assert monitor_set.prediction.counts.skipped == 900
    assert monitor_set.error.counts.skipped == 0
    stored = drift_rows.load_monitors(store.db, MODEL, "stable")
    assert stored["feature:f1"]["state"]["counts"]["skipped"] == 900


def test_canary_drift_alone_aborts_canary(
    store: Store, shuttle_reference, stream, service_factory
) -> None:
    stable = add_version(store, shuttle_reference)
    canary = add_version(store, shuttle_reference)
    deploy(store, stable=stable, canary=canary)
    aborted: list[tuple[str, str]] = []
    retrained: list[str] = []
    service = service_factory(
        abort_canary=lambda model, reason: aborted.append((model, reason)) or {},
        retrain=lambda model, reason: retrained.append(model),
        monitoring={"retrain_on_drift": True},
    )
    features, labels = stream

    # Stable gets only the rows before the shift, the canary all of them.
    _observe_all(service, features[:SHIFT_ROW], labels[:SHIFT_ROW], version=stable)
    _observe_all(service, features, labels, version=canary)
    assert service.wait_idle(WAIT_SECONDS)

    events = _events(store)
    assert [(event["role"], event["signal"]) for event in events] == [
        ("canary", "feature:f1")
    ]
    assert len(aborted) == 1
    assert aborted[0][0] == MODEL
    assert "feature:f1 of the canary version 2" in aborted[0][1]
    assert retrained == []


def test_canary_kept_when_stable_drifts_too(
    store: Store, shuttle_reference, stream, service_factory
) -> None:
    stable = add_version(store, shuttle_reference)
    canary = add_version(store, shuttle_reference)
    deploy(store, stable=stable, canary=canary)
    aborted: list[str] = []
    service = service_factory(
        abort_canary=lambda model, reason: aborted.append(model),
        monitoring={"cooldown_rows": 100_000},
    )
    features, labels = stream

    _observe_all(service, features, labels, version=stable)
    assert service.wait_idle(WAIT_SECONDS)
    _observe_all(service, features, labels, version=canary)
    assert service.wait_idle(WAIT_SECONDS)

    roles = [event["role"] for event in _events(store)]
    assert roles == ["stable", "canary"]
    assert aborted == []


def test_ended_canary_monitors_are_removed(
    store: Store, shuttle_reference, stream, service_factory
) -> None:
    stable = add_version(store, shuttle_reference)
    canary = add_version(store, shuttle_reference)
    deploy(store, stable=stable, canary=canary)
    service = service_factory()
    _observe_all(service, stream[0][:200], stream[1][:200], version=canary)
    assert service.wait_idle(WAIT_SECONDS)
    wait_for(
        lambda: drift_rows.load_monitors(store.db, MODEL, "canary"),
        timeout=WAIT_SECONDS,
        what="the canary monitors' checkpoint",
    )

    deploy(store, stable=stable)
    wait_for(
        lambda: not drift_rows.load_monitors(store.db, MODEL, "canary"),
        timeout=WAIT_SECONDS,
        what="the canary monitors to be removed",
    )

    assert service.monitor_set(MODEL, "canary") is None


def test_stable_drift_retrains_once_per_cooldown(
    store: Store, shuttle_reference, stream, service_factory
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))
    retrained: list[str] = []
    service = service_factory(
        retrain=lambda model, reason: retrained.append(model),
        monitoring={"retrain_on_drift": True},
    )
    features, labels = stream
    # The rows after the shift again, with f3 offset too: a second change.
    second = features[SHIFT_ROW:].copy()
    second[:, 2] += 0.5 * features[:, 2].std()

    _observe_all(service, features, labels)
    _observe_all(service, second, labels[SHIFT_ROW:])
    assert service.wait_idle(WAIT_SECONDS)

    signals = [event["signal"] for event in _events(store)]
    assert signals == ["feature:f1", "feature:f3"]
    assert retrained == [MODEL]


def test_retrain_cooldown_survives_restart(tmp_path: Path, store: Store) -> None:
    config = make_config(tmp_path, monitoring={"retrain_on_drift": True})
    now = [1000.0]
    fired: list[str] = []
    event = DriftEvent(1, 1, MODEL, 1, "stable", "feature:f1", "adwin", 10, 0.0, {})

    RetrainOnDrift(store, config, _record(fired), clock=lambda: now[0]).on_drift(event)
    now[0] += 60
    RetrainOnDrift(store, config, _record(fired), clock=lambda: now[0]).on_drift(event)
    now[0] += 21_600
    RetrainOnDrift(store, config, _record(fired), clock=lambda: now[0]).on_drift(event)

    assert fired == [MODEL, MODEL]


def test_failing_hook_does_not_stop_monitoring(
    store: Store, shuttle_reference, stream, service_factory
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))

    class FailingHook:
        def on_drift(self, event: DriftEvent) -> None:
            raise RuntimeError("hook failed")

    recorder = RecordingHook()
    service = service_factory()
    service.add_hook(FailingHook())
    service.add_hook(recorder)

    _observe_all(service, *stream)
    assert service.wait_idle(WAIT_SECONDS)

    assert len(recorder.events) == 1
    assert len(_events(store)) == 1


def test_restart_keeps_drift_without_repeat(
    store: Store, shuttle_reference, stream, service_factory
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))
    features, labels = stream
    first = service_factory(monitoring={"cooldown_rows": 100_000})
    _observe_all(first, features, labels)
    assert first.wait_idle(WAIT_SECONDS)
    first.stop()

    second = service_factory(monitoring={"cooldown_rows": 100_000})
    drifting_before_traffic = second.is_drifting(MODEL, "stable", "feature:f1")
    _observe_all(second, features[SHIFT_ROW:], labels[SHIFT_ROW:])
    assert second.wait_idle(WAIT_SECONDS)

    assert drifting_before_traffic is True
    assert len(_events(store)) == 1
    f1 = second.monitor_set(MODEL, "stable").monitor("feature:f1")
    assert f1.status is MonitorStatus.DRIFTING
    assert f1.counts.accepted == 8000 + 5000
    assert f1.counts.events == 1


def test_restart_on_steady_traffic_raises_nothing(
    store: Store, shuttle, shuttle_reference, service_factory
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))
    features, labels = shuttle
    order = np.random.default_rng(3).permutation(len(features))[:30_000]
    first = service_factory()
    _observe_all(first, features[order[:15_000]], labels[order[:15_000]])
    assert first.wait_idle(WAIT_SECONDS)
    first.stop()

    second = service_factory()
    _observe_all(second, features[order[15_000:]], labels[order[15_000:]])
    assert second.wait_idle(WAIT_SECONDS)

    assert _events(store) == []
    f2 = second.monitor_set(MODEL, "stable").monitor("feature:f2")
    assert f2.counts.accepted == 30_000


def test_feedback_labels_feed_error_monitor(
    store: Store, shuttle_reference, service_factory
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))
    service = service_factory()
    rng = np.random.default_rng(12)
    wrong = np.concatenate([rng.random(4000) < 0.05, rng.random(4000) < 0.4])

    _log_predictions_with_feedback(store, wrong)

    def error_monitor_done() -> bool:
        monitor_set = service.monitor_set(MODEL, "stable")
        return monitor_set is not None and monitor_set.error.counts.accepted == 8000

    wait_for(error_monitor_done, timeout=WAIT_SECONDS, what="the error monitor")
    events = _events(store)
    assert [event["signal"] for event in events] == ["error"]
    assert 4000 < events[0]["sample_index"] <= 5000
    assert events[0]["detector"] == "hddm-a"


def test_prediction_feed_rows_reach_monitors(
    store: Store, shuttle_reference, stream, service_factory
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))
    service = service_factory()
    features, labels = stream
    logged = [
        {
            "model": MODEL,
            "version": 1,
            "features": row,
            "outputs": {"label": int(label), "probabilities": [1 - label, label]},
        }
        for row, label in zip(
            features[:500].tolist(), labels[:500].tolist(), strict=True
        )
    ]

    service.on_predictions(logged)
    assert service.wait_idle(WAIT_SECONDS)

    monitor_set = service.monitor_set(MODEL, "stable")
    assert monitor_set.features[0].counts.accepted == 500
    assert monitor_set.prediction.counts.accepted == 500


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ({"label": 1, "probabilities": [0.2, 0.8]}, 0.8),
        ({"label": 2, "probabilities": [0.1, 0.3, 0.6]}, 0.6),
        ({"label": 3}, 3.0),
        ({"label": "cat"}, math.nan),
        ({"label": None, "probabilities": [None, None]}, math.nan),
    ],
)
def test_prediction_value(outputs: dict, expected: float) -> None:
    assert prediction_value(outputs) == pytest.approx(expected, nan_ok=True)


def _log_predictions_with_feedback(store: Store, wrong: np.ndarray) -> None:
    predictions = []
    feedback = []
    for index, is_wrong in enumerate(wrong.tolist()):
        key = f"request-{index}"
        outputs = json.dumps({"label": 0, "probabilities": [0.9, 0.1]})
        predictions.append((MODEL, 1, key, 0, 0.0, "[]", outputs, 0.001, 200, 0))
        feedback.append((key, "1" if is_wrong else "0"))
    with store.write() as db:
        prediction_rows.insert_predictions(db, predictions)
        prediction_rows.insert_feedback(db, MODEL, feedback, ts=0.0)


def test_rows_that_are_not_sequences_are_invalid(
    store: Store, shuttle_reference, service_factory
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))
    service = service_factory()

    service.observe(MODEL, 1, "f1,f2", 0.0)
    service.observe(MODEL, 1, None, 0.0)
    service.observe(MODEL, 1, np.array([40.0, 0, 80, 0, 36, 0, 38, 48, 10]), 0.0)
    assert service.wait_idle(WAIT_SECONDS)

    f1 = service.monitor_set(MODEL, "stable").features[0]
    assert f1.counts.invalid == 2
    assert f1.counts.accepted == 1


def _record(fired: list[str]):
    return lambda model, reason: fired.append(model)


def _add_feedback(store: Store, count: int, model: str = MODEL) -> None:
    with store.write() as db:
        for _ in range(count):
            db.conn.execute(
                "INSERT INTO feedback (model, request_id, label, ts) "
                "VALUES (?, ?, '1', 0)",
                (model, f"r-{uuid.uuid4()}"),
            )


def test_retrain_waits_for_feedback_labels(tmp_path: Path, store: Store) -> None:
    config = make_config(
        tmp_path,
        monitoring={"retrain_on_drift": True, "retrain_min_labels": 50},
        dataset={"include_feedback": True},
    )
    fired: list[tuple[str, str]] = []
    event = DriftEvent(1, 1, MODEL, 1, "stable", "feature:f1", "adwin", 10, 0.0, {})
    _add_feedback(store, 30)  # labels from before the change do not count
    policy = RetrainOnDrift(
        store, config, lambda model, reason: fired.append((model, reason))
    )

    policy.on_drift(event)
    _add_feedback(store, 49)
    policy.poll()
    assert fired == []

    # A second event while the retrain waits changes nothing, and the wait
    # survives a restart (a new policy object on the same store).
    policy.on_drift(event)
    _add_feedback(store, 1)
    RetrainOnDrift(
        store, config, lambda model, reason: fired.append((model, reason))
    ).poll()
    RetrainOnDrift(
        store, config, lambda model, reason: fired.append((model, reason))
    ).poll()

    assert fired == [
        (
            MODEL,
            "Drift event 1 on feature:f1, then 50 feedback labels of the traffic "
            "after it.",
        )
    ]


def test_retrain_min_labels_needs_feedback_in_the_data(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="include_feedback = true"):
        make_config(tmp_path, monitoring={"retrain_min_labels": 10})


class SkippedFire:
    outcome = "skipped"
    detail = "run 2 of model shuttle was still running"


def test_rows_the_feed_skipped_count_on_the_monitors(
    store: Store, shuttle_reference, stream, service_factory
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))
    service = service_factory()
    features, labels = stream[0][:10], stream[1][:10]
    for row, label in zip(features.tolist(), labels.tolist(), strict=True):
        service.observe(MODEL, 1, row, label, role="stable")

    service.on_skipped(MODEL, 1, 4321)
    assert service.wait_idle(WAIT_SECONDS)
    service.stop()

    monitor_set = service.monitor_set(MODEL, "stable")
    assert monitor_set.prediction.counts.skipped == 4321
    assert all(m.counts.skipped == 4321 for m in monitor_set.features)
    assert monitor_set.error.counts.skipped == 0
    stored = drift_rows.load_monitors(store.db, MODEL, "stable")
    assert stored["feature:f1"]["state"]["counts"]["skipped"] == 4321


def test_skipped_retrain_is_retried_not_lost(tmp_path: Path, store: Store) -> None:
    config = make_config(
        tmp_path,
        monitoring={"retrain_on_drift": True, "retrain_min_labels": 10},
        dataset={"include_feedback": True},
    )
    now = [1000.0]
    answers = [SkippedFire(), RuntimeError("database is locked"), None]
    fired: list[str] = []

    def retrain(model: str, reason: str):
        fired.append(model)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    policy = RetrainOnDrift(store, config, retrain, clock=lambda: now[0])
    event = DriftEvent(1, 1, MODEL, 1, "stable", "feature:f1", "adwin", 10, 0.0, {})
    policy.on_drift(event)
    _add_feedback(store, 10)

    policy.poll()  # skipped: another run is active
    policy.poll()  # within the retry delay: not tried
    now[0] += 31
    policy.poll()  # raises: still kept
    now[0] += 31
    policy.poll()  # starts
    now[0] += 31
    policy.poll()  # nothing left to fire

    assert fired == [MODEL, MODEL, MODEL]
    rows = store.db.conn.execute("SELECT key FROM settings").fetchall()
    assert [key for (key,) in rows] == [f"drift.retrain_fired_at.{MODEL}"]


def test_retrain_of_unconfigured_model_is_dropped_and_logged(
    tmp_path: Path, store: Store, caplog
) -> None:
    waiting = make_config(
        tmp_path,
        monitoring={"retrain_on_drift": True, "retrain_min_labels": 10},
        dataset={"include_feedback": True},
    )
    event = DriftEvent(7, 1, MODEL, 1, "stable", "feature:f1", "adwin", 10, 0.0, {})
    RetrainOnDrift(store, waiting, _record([])).on_drift(event)
    turned_off = make_config(tmp_path, monitoring={"retrain_on_drift": False})

    RetrainOnDrift(store, turned_off, _record([])).poll()

    assert store.db.conn.execute("SELECT COUNT(*) FROM settings").fetchone() == (0,)
    assert "dropped the retrain of shuttle that drift event 7 started" in caplog.text
