"""Alert delivery to notifiers: a webhook on a loopback receiver, retries, cursors."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from drift_helpers import MODEL, add_version, deploy, make_config
from harness import wait_for

from agent.drift import DriftService, NotificationService
from store import Store, alerts

WAIT_SECONDS = 30
POLL_SECONDS = 0.02


class Receiver:
    """A webhook receiver on 127.0.0.1 that responds with the queued statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                receiver.requests += 1
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                if status < 300:
                    receiver.bodies.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def notification_factory(
    tmp_path: Path, store: Store
) -> Iterator[Callable[..., NotificationService]]:
    started: list[NotificationService] = []

    def factory(notifiers: list[dict[str, Any]]) -> NotificationService:
        config = make_config(tmp_path, notifiers=notifiers)
        service = NotificationService(store, config, poll_seconds=POLL_SECONDS)
        service.start()
        started.append(service)
        return service

    yield factory
    for service in started:
        service.stop()


def _webhook(url: str, **settings: Any) -> dict[str, Any]:
    return {
        "name": "ops",
        "plugin": "webhook",
        "options": {"url": url, "timeout_seconds": 5},
        "backoff_seconds": 0.01,
        **settings,
    }


def _raise(store: Store, message: str, severity: str = "warning") -> int:
    with store.write() as db:
        return alerts.raise_alert(
            db, kind="test", severity=severity, source="model/shuttle", message=message
        )


def _outcomes(store: Store) -> list[tuple]:
    return store.db.execute(
        "SELECT alert_id, notifier, outcome, attempts, detail FROM notifications "
        "ORDER BY id"
    ).fetchall()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_drift_event_is_delivered_once(
    tmp_path: Path,
    store: Store,
    shuttle,
    shuttle_reference,
    receiver: Receiver,
    notification_factory,
) -> None:
    deploy(store, stable=add_version(store, shuttle_reference))
    notifications = notification_factory([_webhook(receiver.url)])
    features, labels = shuttle
    order = np.random.default_rng(0).permutation(len(features))[:6000]
    rows = features[order].copy()
    rows[3000:, 0] += 0.5 * features[:, 0].std()
    drift = DriftService(store, make_config(tmp_path), read_feedback=False)
    drift.start()
    for row, label in zip(rows.tolist(), labels[order].tolist(), strict=True):
        drift.observe(MODEL, 1, row, label)
    assert drift.wait_idle(WAIT_SECONDS)
    drift.stop()

    wait_for(lambda: _outcomes(store), timeout=WAIT_SECONDS, what="a delivery")
    handled_again = notifications.workers[0].deliver_pending()

    assert handled_again == 0
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert body["kind"] == "drift"
    assert body["agent"] == "drift-test"
    assert body["source"] == "model/shuttle/stable/feature:f1"
    assert body["details"]["drift_event"]["signal"] == "feature:f1"
    assert body["details"]["drift_event"]["alert_id"] == body["alert_id"]
    assert _outcomes(store) == [(body["alert_id"], "ops", "delivered", 1, "HTTP 204")]


def test_down_receiver_retried_then_failed(store: Store, notification_factory) -> None:
    url = f"http://127.0.0.1:{_free_port()}/hook"
    notification_factory([_webhook(url, max_attempts=3)])

    alert_id = _raise(store, "The receiver is down.")
    wait_for(lambda: _outcomes(store), timeout=WAIT_SECONDS, what="the outcome")

    [(recorded_id, notifier, outcome, attempts, detail)] = _outcomes(store)
    assert recorded_id == alert_id
    assert notifier == "ops"
    assert outcome == "failed"
    assert attempts == 3
    assert "could not be reached" in detail


def test_server_error_is_retried_until_delivered(
    store: Store, notification_factory
) -> None:
    receiver = Receiver(statuses=[500, 503])
    try:
        notification_factory([_webhook(receiver.url)])

        alert_id = _raise(store, "Delivered on the third attempt.")
        wait_for(lambda: _outcomes(store), timeout=WAIT_SECONDS, what="the outcome")
    finally:
        receiver.close()

    assert receiver.requests == 3
    assert _outcomes(store) == [(alert_id, "ops", "delivered", 3, "HTTP 204")]


def test_failing_webhook_does_not_delay_other_notifiers(
    store: Store, receiver: Receiver, notification_factory
) -> None:
    down = f"http://127.0.0.1:{_free_port()}/hook"
    notification_factory(
        [
            _webhook(down, name="down", max_attempts=20, backoff_seconds=300),
            _webhook(receiver.url, name="up"),
        ]
    )

    _raise(store, "Only one notifier can deliver this.")
    wait_for(lambda: _outcomes(store), timeout=WAIT_SECONDS, what="a delivery")

    assert [row[1:3] for row in _outcomes(store)] == [("up", "delivered")]


def test_alerts_below_min_severity_are_not_sent(
    store: Store, receiver: Receiver, notification_factory
) -> None:
    notification_factory([_webhook(receiver.url, min_severity="critical")])

    _raise(store, "Only a warning.", severity="warning")
    critical = _raise(store, "Critical.", severity="critical")
    wait_for(lambda: _outcomes(store), timeout=WAIT_SECONDS, what="the outcome")

    assert [body["alert_id"] for body in receiver.bodies] == [critical]
    assert [row[0] for row in _outcomes(store)] == [critical]


def test_notifier_skips_history_and_repeats(
    tmp_path: Path, store: Store, receiver: Receiver
) -> None:
    _raise(store, "Raised before any notifier ran.")
    config = make_config(tmp_path, notifiers=[_webhook(receiver.url)])
    first = NotificationService(store, config, poll_seconds=POLL_SECONDS)
    first.start()
    delivered = _raise(store, "Raised while the notifier ran.")
    wait_for(lambda: receiver.bodies, timeout=WAIT_SECONDS, what="a delivery")
    first.stop()

    second = NotificationService(store, config, poll_seconds=POLL_SECONDS)
    second.start()
    handled = second.workers[0].deliver_pending()
    second.stop()

    assert handled == 0
    assert [body["alert_id"] for body in receiver.bodies] == [delivered]


def test_log_notifier_records_delivery(
    store: Store, notification_factory, caplog: pytest.LogCaptureFixture
) -> None:
    notification_factory([{"name": "log", "plugin": "log"}])

    with caplog.at_level("WARNING", logger="plugins.notifiers.log"):
        alert_id = _raise(store, "Written to the log.")
        wait_for(lambda: _outcomes(store), timeout=WAIT_SECONDS, what="the outcome")

    assert _outcomes(store) == [(alert_id, "log", "delivered", 1, "logged")]
    assert f"alert {alert_id} (test, warning)" in caplog.text
    assert "Written to the log." in caplog.text
