"""The webhook notifier against a receiver on 127.0.0.1, and its options."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import plugins
from plugins import PluginConfigError
from plugins.notifiers import Notification, NotifierError
from plugins.notifiers.webhook import WebhookNotifier

NOTIFICATION = Notification(
    alert_id=7,
    agent="gpu-01",
    kind="drift",
    severity="warning",
    source="model/shuttle/stable/feature:f1",
    message="Drift on feature:f1.",
    created_at=1000.0,
    details={"drift_event": {"id": 3}},
)


class Receiver:
    """Records each POST body and its headers; responds with ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts?key=x"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def _notifier(url: str, **options: Any) -> WebhookNotifier:
    return WebhookNotifier(WebhookNotifier.validate_options({"url": url, **options}))


def test_entry_point_loads_webhook_and_log() -> None:
    assert plugins.load("notifier", "webhook") is WebhookNotifier
    assert plugins.load("notifier", "log").name == "log"


def test_sends_notification_as_json_with_headers(receiver: Receiver) -> None:
    notifier = _notifier(receiver.url, headers={"Authorization": "Bearer s3cret"})

    outcome = notifier.send(NOTIFICATION)
    notifier.close()

    assert outcome == "HTTP 200"
    [(headers, body)] = receiver.requests
    assert body == NOTIFICATION.to_json()
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "application/json"


def test_error_status_raises_naming_host_not_secret() -> None:
    receiver = Receiver(status=503)
    try:
        notifier = _notifier(receiver.url, headers={"Authorization": "Bearer s3cret"})
        with pytest.raises(NotifierError) as raised:
            notifier.send(NOTIFICATION)
        notifier.close()
    finally:
        receiver.close()

    message = str(raised.value)
    assert "responded with HTTP 503" in message
    assert "127.0.0.1:" in message
    assert "s3cret" not in message
    assert "key=x" not in message


def test_unanswered_request_times_out() -> None:
    # A listening socket that never accepts: the connection is queued by
    # the kernel, and no response ever comes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        notifier = _notifier(f"http://127.0.0.1:{port}/", timeout_seconds=0.2)

        with pytest.raises(NotifierError) as raised:
            notifier.send(NOTIFICATION)
        notifier.close()

    assert "timed out: no response within 0.2 s" in str(raised.value)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "the option 'url' is required"),
        ({"url": "ftp://host/x"}, "url must be an http:// or https:// URL"),
        ({"url": "http://"}, "url must be an http:// or https:// URL with a host"),
        (
            {"url": "http://h", "timeout_seconds": 0},
            "timeout_seconds must be in (0, 120]",
        ),
        (
            {"url": "http://h", "timeout_seconds": "5"},
            "timeout_seconds must be an int or float",
        ),
        ({"url": "http://h", "headers": {"X": 1}}, "headers.X must be a string"),
        ({"url": "http://h", "retries": 3}, "unknown option 'retries'"),
    ],
)
def test_invalid_options_name_the_setting(options: dict, expected: str) -> None:
    with pytest.raises(PluginConfigError) as raised:
        WebhookNotifier.validate_options(options)

    assert expected in str(raised.value)


def test_options_get_defaults() -> None:
    assert WebhookNotifier.validate_options({"url": "https://hooks.example/x"}) == {
        "url": "https://hooks.example/x",
        "timeout_seconds": 5.0,
        "headers": {},
    }
