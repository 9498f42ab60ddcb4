"""One monitor: non-finite values, constant input, confirmation, cooldown, restarts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from river import drift

from agent.drift.monitor import Monitor, MonitorSettings, MonitorStatus
from agent.drift.reference import ReferenceCdf
from plugins.detectors.river_detectors import Adwin, HddmA, Kswin, PageHinkley

REAL_DETECTORS = (Adwin, Kswin, PageHinkley)


def _monitor(
    detector_class=Adwin,
    reference: ReferenceCdf | None = None,
    options: dict | None = None,
    **settings,
) -> Monitor:
    detector_options = detector_class.validate_options(options or {})
    monitor_settings = MonitorSettings(
        detector_class.name, detector_options, **settings
    )
    return Monitor(
        "feature:x", monitor_settings, detector_class(detector_options), reference
    )


def _normal_reference(seed: int = 0) -> ReferenceCdf:
    return ReferenceCdf.from_sample(np.random.default_rng(seed).normal(size=5000))


def _nan_then_shift(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.normal(size=100), [math.nan], rng.normal(size=5000) + 10.0]
    )


@pytest.mark.parametrize("detector_class", [drift.ADWIN, drift.PageHinkley])
def test_river_detector_goes_silent_after_one_nan(detector_class) -> None:
    # Why non-finite values must never reach a detector (river 0.26).
    detector = detector_class()
    detections_after_nan = 0
    for index, value in enumerate(_nan_then_shift(1).tolist()):
        detector.update(value)
        if index > 100:
            detections_after_nan += detector.drift_detected

    assert detections_after_nan == 0


@pytest.mark.parametrize("detector_class", [Adwin, PageHinkley])
def test_nan_is_counted_and_shift_still_found(detector_class) -> None:
    monitor = _monitor(detector_class, _normal_reference())

    findings = monitor.feed(_nan_then_shift(1))

    assert monitor.counts.non_finite == 1
    assert monitor.counts.accepted == 5100
    assert len(findings) == 1
    assert findings[0].sample_index > 100


def test_infinities_are_counted_as_non_finite() -> None:
    monitor = _monitor(Adwin, _normal_reference())

    monitor.feed(np.array([1.0, math.inf, -math.inf, math.nan, 0.5]))

    assert monitor.counts.non_finite == 3
    assert monitor.counts.accepted == 2


@pytest.mark.parametrize("detector_class", [*REAL_DETECTORS, HddmA])
def test_constant_signal_raises_nothing(detector_class) -> None:
    reference = ReferenceCdf.from_sample(np.full(100, 3.0))
    monitor = _monitor(detector_class, reference)
    value = 0.0 if detector_class is HddmA else 3.0

    findings = monitor.feed(np.full(10_000, value))

    assert findings == []
    assert monitor.counts.detections == 0
    assert monitor.status is MonitorStatus.WATCHING


def test_step_change_raises_one_event_while_it_lasts() -> None:
    rng = np.random.default_rng(2)
    monitor = _monitor(Adwin, _normal_reference(), cooldown_rows=1000)
    stream = np.concatenate([rng.normal(size=3000), rng.normal(size=20_000) + 2.0])

    findings = monitor.feed(stream)

    assert len(findings) == 1
    assert monitor.counts.events == 1
    assert monitor.status is MonitorStatus.WATCHING


def test_gradual_drift_raises_one_event() -> None:
    rng = np.random.default_rng(3)
    ramp = np.linspace(0.0, 4.0, 6000)
    stream = np.concatenate([rng.normal(size=3000), rng.normal(size=6000) + ramp])
    monitor = _monitor(Adwin, _normal_reference(), cooldown_rows=2000)

    findings = monitor.feed(stream)

    assert len(findings) == 1
    assert monitor.counts.confirmed > 1
    assert monitor.counts.events == 1


def test_new_change_after_cooldown_raises_second_event() -> None:
    rng = np.random.default_rng(4)
    monitor = _monitor(Adwin, _normal_reference(), cooldown_rows=500)
    stream = np.concatenate(
        [
            rng.normal(size=3000),
            rng.normal(size=3000) + 2.0,
            rng.normal(size=3000) + 5.0,
        ]
    )

    findings = monitor.feed(stream)

    assert len(findings) == 2
    assert 3000 < findings[0].sample_index < 3500
    assert 6000 < findings[1].sample_index < 6500


def test_detection_not_confirmed_is_dismissed() -> None:
    # A Page-Hinkley test this sensitive fires on noise; the z-test on the
    # values after each detection dismisses every one. Detections while a
    # confirmation is pending join it, so there are fewer dismissals.
    rng = np.random.default_rng(5)
    monitor = _monitor(
        PageHinkley, _normal_reference(), options={"threshold": 3, "delta": 0.005}
    )

    findings = monitor.feed(rng.normal(size=20_000))

    assert findings == []
    assert monitor.counts.dismissed > 10
    assert monitor.counts.dismissed <= monitor.counts.detections
    assert monitor.counts.confirmed == 0


def test_event_carries_statistics_before_and_after() -> None:
    rng = np.random.default_rng(6)
    monitor = _monitor(Adwin, _normal_reference())
    stream = np.concatenate([rng.normal(size=3000), rng.normal(size=2000) + 3.0])

    finding = monitor.feed(stream)[0]

    stats = finding.stats
    assert finding.signal == "feature:x"
    assert finding.detector == "adwin"
    assert stats["detected_index"] < stats["confirmed_index"]
    assert stats["confirmed_index"] == finding.sample_index - 1
    assert stats["before"]["mean"] == pytest.approx(0.0, abs=0.2)
    assert stats["after"]["mean"] == pytest.approx(3.0, abs=0.3)
    assert stats["after"]["count"] == 100
    assert stats["reference"]["source"] == "version"
    assert stats["transformed"]["after_mean"] > stats["transformed"]["before_mean"]
    json.dumps(stats, allow_nan=False)


def test_missing_reference_warms_up_on_first_values() -> None:
    rng = np.random.default_rng(7)
    monitor = _monitor(Adwin, None, warmup_rows=200)

    monitor.feed(rng.normal(size=150))
    status_during_warmup = monitor.status
    monitor.feed(rng.normal(size=100))

    assert status_during_warmup is MonitorStatus.WARMING_UP
    assert monitor.status is MonitorStatus.WATCHING
    assert monitor.reference_source == "warmup"
    assert monitor.counts.accepted == 250


def test_binary_error_monitor_counts_invalid_values() -> None:
    monitor = _monitor(HddmA, rise_only=True)

    monitor.feed(np.array([0.0, 1.0, 2.0, 0.5, math.nan, 0.0]))

    assert monitor.counts.invalid == 2
    assert monitor.counts.non_finite == 1
    assert monitor.counts.accepted == 3
    assert monitor.reference_source == "none"


def test_error_monitor_reports_rise_not_fall() -> None:
    rng = np.random.default_rng(8)
    rising = _monitor(HddmA, rise_only=True)
    falling = _monitor(HddmA, rise_only=True)
    low = (rng.random(5000) < 0.05).astype(float)
    high = (rng.random(5000) < 0.30).astype(float)

    rise_findings = rising.feed(np.concatenate([low, high]))
    fall_findings = falling.feed(np.concatenate([high, low]))

    assert len(rise_findings) == 1
    assert rise_findings[0].signal == "feature:x"
    assert fall_findings == []


@pytest.mark.parametrize("seed", range(5))
def test_error_monitor_confirms_rise_from_low_rate(seed: int) -> None:
    # HDDM_A fires 400 to 900 values after this rise. The z-test baseline
    # must end at HDDM_A's cut point, not confirm_rows before the detection,
    # or it contains the raised error rate and the rise is dismissed.
    rng = np.random.default_rng(seed)
    monitor = _monitor(HddmA, rise_only=True)
    low = (rng.random(3000) < 0.0007).astype(float)
    high = (rng.random(2500) < 0.08).astype(float)

    findings = monitor.feed(np.concatenate([low, high]))

    assert len(findings) == 1
    assert monitor.counts.dismissed == 0
    assert 2950 <= findings[0].stats["change_index"] <= 3100
    assert findings[0].stats["before"]["mean"] < 0.01


def test_restart_keeps_drift_and_raises_no_new_event() -> None:
    rng = np.random.default_rng(9)
    before = _monitor(Adwin, _normal_reference(), cooldown_rows=5000)
    first = before.feed(
        np.concatenate([rng.normal(size=3000), rng.normal(size=1000) + 3.0])
    )
    state = json.loads(json.dumps(before.to_state()))

    after = _monitor(Adwin, _normal_reference(), cooldown_rows=5000)
    after.restore(state)
    second = after.feed(rng.normal(size=3000) + 3.0)

    assert len(first) == 1
    assert second == []
    assert after.status is MonitorStatus.DRIFTING
    assert after.counts.events == 1
    assert after.counts.accepted == 7000
    assert after.last_event_index == before.last_event_index


def test_restart_on_steady_stream_raises_nothing() -> None:
    rng = np.random.default_rng(10)
    before = _monitor(Adwin, _normal_reference())
    before.feed(rng.normal(size=20_000))
    after = _monitor(Adwin, _normal_reference())
    after.restore(json.loads(json.dumps(before.to_state())))
    restored_values = after.recent_values()

    findings = after.feed(rng.normal(size=20_000))

    assert restored_values == pytest.approx(before.recent_values(), rel=1e-6)
    assert findings == []
    assert after.counts.detections == 0
    assert after.counts.accepted == 40_000


def test_restart_then_change_is_still_found() -> None:
    rng = np.random.default_rng(11)
    before = _monitor(Adwin, _normal_reference())
    before.feed(rng.normal(size=5000))
    after = _monitor(Adwin, _normal_reference())
    after.restore(json.loads(json.dumps(before.to_state())))

    findings = after.feed(rng.normal(size=2000) + 2.0)

    assert len(findings) == 1
    assert 5000 < findings[0].sample_index <= 5500
