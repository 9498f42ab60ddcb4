"""[models.monitoring], [drift] and [[notifiers]]: checked when agent.toml loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from river import drift

from agent.config import load_config
from agent.errors import ConfigError

BASE = """
[agent]
name = "drift-config"
data_dir = "data"

[[models]]
name = "shuttle"
[models.dataset]
plugin = "river"
options = { name = "Shuttle" }
[models.recipe]
plugin = "tabular-mlp"
"""

# (case id, TOML appended to BASE, text the error must contain)
INVALID = [
    (
        "kswin stat_size above half the window",
        '[models.monitoring.features]\nplugin = "kswin"\n'
        "options = { window_size = 100, stat_size = 60 }\n",
        "models.0.monitoring.features: kswin detector: stat_size (60) must be at "
        "most half of window_size (100)",
    ),
    (
        "misspelt option",
        '[models.monitoring.features]\nplugin = "adwin"\noptions = { dleta = 0.01 }\n',
        "models.0.monitoring.features: adwin detector: unknown option 'dleta'",
    ),
    (
        "delta out of range",
        '[models.monitoring.prediction]\nplugin = "adwin"\noptions = { delta = 2.0 }\n',
        "models.0.monitoring.prediction: adwin detector: delta must be in (0.0, 1.0) "
        "(got 2.0)",
    ),
    (
        "page-hinkley mode",
        '[models.monitoring.features]\nplugin = "page-hinkley"\n'
        'options = { mode = "sideways" }\n',
        "page-hinkley detector: mode must be one of up, down, both (got 'sideways')",
    ),
    (
        "integer option given a float",
        '[models.monitoring.features]\nplugin = "adwin"\noptions = { clock = 3.5 }\n',
        "adwin detector: clock must be an int (got 3.5)",
    ),
    (
        "unknown detector",
        '[models.monitoring.error]\nplugin = "cusum"\n',
        "No detector plugin named 'cusum' is installed. Installed detector plugins: "
        "adwin, hddm-a, kswin, page-hinkley.",
    ),
    (
        "history too short",
        "[models.monitoring]\nhistory_rows = 1000\n",
        "history_rows (1000) must exceed baseline_rows plus confirm_rows (1100)",
    ),
    (
        "negative z",
        "[models.monitoring]\nconfirm_z = -1\n",
        "models.0.monitoring.confirm_z: Input should be greater than 0",
    ),
    (
        "webhook without a host",
        '[[notifiers]]\nname = "ops"\nplugin = "webhook"\noptions = { url = "ops" }\n',
        "notifiers.0: webhook notifier: url must be an http:// or https:// URL",
    ),
    (
        "duplicate notifier names",
        '[[notifiers]]\nname = "ops"\nplugin = "log"\n'
        '[[notifiers]]\nname = "ops"\nplugin = "log"\n',
        "notifier names must be unique; repeated: ops",
    ),
    (
        "sample_every of one",
        "[drift]\nsample_every = 1\n",
        "drift.sample_every: Input should be greater than or equal to 2",
    ),
]


def _write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(BASE + extra)
    return path


@pytest.mark.parametrize(
    ("extra", "expected"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_setting_is_named_at_load(
    tmp_path: Path, extra: str, expected: str
) -> None:
    path = _write(tmp_path, extra)

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert expected in str(raised.value)
    assert str(path) in str(raised.value)


def test_river_accepts_invalid_kswin_until_window_fills() -> None:
    # Why the check runs at load: river 0.26 builds the detector and fails
    # only on the window-th update.
    detector = drift.KSWIN(window_size=100, stat_size=60, seed=0)
    for value in range(99):
        detector.update(float(value))

    with pytest.raises(ValueError):
        detector.update(99.0)


def test_defaults_fill_every_detector_option(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, ""))

    monitoring = config.model("shuttle").monitoring
    assert monitoring.features.plugin == "adwin"
    assert monitoring.features.options == {
        "delta": 0.002,
        "clock": 32,
        "max_buckets": 5,
        "min_window_length": 5,
        "grace_period": 10,
    }
    assert monitoring.prediction.plugin == "adwin"
    assert monitoring.error.plugin == "hddm-a"
    assert monitoring.error.options["two_sided_test"] is False
    assert (monitoring.confirm_rows, monitoring.confirm_z) == (100, 5.0)
    assert config.drift.queue_rows == 100_000
    assert config.notifiers == []


def test_valid_monitoring_and_notifiers_load(tmp_path: Path) -> None:
    extra = """
[models.monitoring]
retrain_on_drift = true
cooldown_rows = 500
[models.monitoring.features]
plugin = "kswin"
options = { window_size = 200, stat_size = 100, alpha = 0.001 }

[[notifiers]]
name = "ops"
plugin = "webhook"
min_severity = "critical"
options = { url = "http://127.0.0.1:9/hook", headers = { Authorization = "Bearer x" } }
"""
    config = load_config(_write(tmp_path, extra))

    monitoring = config.model("shuttle").monitoring
    assert monitoring.features.options == {
        "alpha": 0.001,
        "window_size": 200,
        "stat_size": 100,
        "seed": 0,
    }
    assert monitoring.retrain_on_drift is True
    notifier = config.notifiers[0]
    assert notifier.options["timeout_seconds"] == 5.0
    assert notifier.options["headers"] == {"Authorization": "Bearer x"}
    assert notifier.min_severity == "critical"


def test_options_alone_keep_default_plugin(tmp_path: Path) -> None:
    extra = """
[models.monitoring.features]
options = { delta = 0.0001 }
[models.monitoring.error]
options = { drift_confidence = 0.0001 }
"""
    monitoring = load_config(_write(tmp_path, extra)).model("shuttle").monitoring

    assert monitoring.features.plugin == "adwin"
    assert monitoring.features.options["delta"] == 0.0001
    assert monitoring.error.plugin == "hddm-a"
    assert monitoring.error.options["drift_confidence"] == 0.0001
