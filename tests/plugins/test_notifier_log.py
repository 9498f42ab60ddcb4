"""The log notifier: one line per alert at the configured level."""

from __future__ import annotations

import logging

import pytest

from plugins import PluginConfigError
from plugins.notifiers import Notification
from plugins.notifiers.log import LogNotifier

NOTIFICATION = Notification(
    alert_id=4,
    agent="gpu-01",
    kind="drift",
    severity="warning",
    source="model/shuttle/canary/prediction",
    message="Drift on prediction.",
    created_at=1000.0,
)


@pytest.mark.parametrize(
    ("level", "expected"), [("info", logging.INFO), ("error", logging.ERROR)]
)
def test_alert_is_logged_at_level(
    level: str, expected: int, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = LogNotifier(LogNotifier.validate_options({"level": level}))

    with caplog.at_level(logging.DEBUG, logger="plugins.notifiers.log"):
        outcome = notifier.send(NOTIFICATION)

    assert outcome == "logged"
    [record] = caplog.records
    assert record.levelno == expected
    assert record.getMessage() == (
        "alert 4 (drift, warning) from model/shuttle/canary/prediction: "
        "Drift on prediction."
    )


def test_default_level_is_warning() -> None:
    assert LogNotifier.validate_options({}) == {"level": "warning"}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"level": "loud"}, "level must be one of info, warning, error (got 'loud')"),
        ({"level": 3}, "level must be a str (got 3)"),
        ({"format": "json"}, "unknown option 'format'"),
    ],
)
def test_invalid_options_name_the_setting(options: dict, expected: str) -> None:
    with pytest.raises(PluginConfigError) as raised:
        LogNotifier.validate_options(options)

    assert expected in str(raised.value)
