"""The detector plugins: one adapter around river's detectors, on the pinned river."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import river
from river import drift

import plugins
from plugins import PluginConfigError
from plugins.detectors import Detector
from plugins.detectors.river_detectors import Adwin, HddmA, Kswin, PageHinkley

REPO = Path(__file__).resolve().parents[2]
DETECTORS = {
    "adwin": (Adwin, drift.ADWIN),
    "kswin": (Kswin, drift.KSWIN),
    "page-hinkley": (PageHinkley, drift.PageHinkley),
    "hddm-a": (HddmA, drift.binary.HDDMA),
}


def _step(detector_class: type[Detector]) -> list[float]:
    rng = np.random.default_rng(0)
    if detector_class.input_kind == "binary":
        low = rng.random(3000) < 0.05
        high = rng.random(3000) < 0.5
        return np.concatenate([low, high]).astype(float).tolist()
    return np.concatenate(
        [rng.random(3000) * 0.5, rng.random(3000) * 0.5 + 0.5]
    ).tolist()


def test_river_is_the_pinned_release() -> None:
    # update() returned a tuple before river 0.12 and the detector until
    # 0.21; the adapter is written for 0.26 and tested against it.
    assert river.__version__.startswith("0.26.")


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_entry_point_loads_detector(name: str) -> None:
    detector_class = plugins.load("detector", name)

    assert detector_class is DETECTORS[name][0]
    assert issubclass(detector_class, Detector)
    assert detector_class.name == name


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_adapter_matches_river_after_update(name: str) -> None:
    adapter_class, river_class = DETECTORS[name]
    options = adapter_class.validate_options({})
    adapter = adapter_class(options)
    reference = river_class(**options)
    adapter_hits, river_hits = [], []

    for index, value in enumerate(_step(adapter_class)):
        returned = adapter.update(value)
        reference.update(value)
        assert isinstance(returned, bool)
        if returned:
            adapter_hits.append(index)
        if reference.drift_detected:
            river_hits.append(index)

    assert adapter_hits == river_hits
    assert any(hit >= 3000 for hit in adapter_hits)


def test_adwin_change_size_is_window_after_cut() -> None:
    adapter = Adwin(Adwin.validate_options({}))
    reference = drift.ADWIN()
    sizes = []
    for index, value in enumerate(_step(Adwin)):
        reference.update(value)
        if adapter.update(value):
            sizes.append((adapter.change_size(), int(reference.width), index + 1))

    assert len(sizes) == 1
    change_size, width, seen = sizes[0]
    assert change_size == width
    # The values kept after the cut start within 200 of the change at 3000.
    assert abs((seen - change_size) - 3000) <= 200


def test_detector_without_estimate_has_no_change_size() -> None:
    detector = PageHinkley(PageHinkley.validate_options({}))

    assert detector.change_size() is None


@pytest.mark.parametrize(
    ("detector_class", "options", "expected"),
    [
        (Adwin, {"delta": 0}, "adwin detector: delta must be in (0.0, 1.0) (got 0)"),
        (Adwin, {"clock": True}, "adwin detector: clock must be an int (got True)"),
        (Adwin, {"clock": 0}, "adwin detector: clock must be at least 1 (got 0)"),
        (Adwin, {"delta": float("nan")}, "adwin detector: delta must be finite"),
        (Adwin, {"window": 5}, "adwin detector: unknown option 'window'"),
        (
            Kswin,
            {"window_size": 50, "stat_size": 30},
            "kswin detector: stat_size (30) must be at most half of window_size (50)",
        ),
        (
            PageHinkley,
            {"threshold": 0},
            "page-hinkley detector: threshold must be greater than 0.0 (got 0)",
        ),
        (
            HddmA,
            {"drift_confidence": 0.01, "warning_confidence": 0.001},
            "hddm-a detector: warning_confidence (0.001) must be at least "
            "drift_confidence (0.01)",
        ),
    ],
)
def test_invalid_options_name_the_setting(
    detector_class: type[Detector], options: dict, expected: str
) -> None:
    with pytest.raises(PluginConfigError) as raised:
        detector_class.validate_options(options)

    assert expected in str(raised.value)


def test_options_get_defaults_and_float_conversion() -> None:
    options = PageHinkley.validate_options({"threshold": 20, "mode": "up"})

    assert options == {
        "min_instances": 30,
        "delta": 0.005,
        "threshold": 20.0,
        "alpha": 0.9999,
        "mode": "up",
    }
    assert isinstance(options["threshold"], float)


def test_kswin_at_half_window_runs_past_window() -> None:
    options = Kswin.validate_options({"window_size": 60, "stat_size": 30})
    detector = Kswin(options)

    for value in np.random.default_rng(1).random(200).tolist():
        detector.update(value)


def test_only_hddm_a_takes_binary_input() -> None:
    kinds = {name: classes[0].input_kind for name, classes in DETECTORS.items()}

    assert kinds == {
        "adwin": "real",
        "kswin": "real",
        "page-hinkley": "real",
        "hddm-a": "binary",
    }


def test_validating_options_does_not_import_river() -> None:
    code = (
        "import json, sys\n"
        "from plugins.detectors.river_detectors import Adwin, Kswin\n"
        "Adwin.validate_options({'delta': 0.01})\n"
        "Kswin.validate_options({})\n"
        "print(json.dumps('river' in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) is False
