"""The built-in gates: verdicts and reasons for each case."""

from __future__ import annotations

import pytest

from plugins import (
    Candidate,
    GateContext,
    PluginConfigError,
    ProductionVersion,
    metric_value,
)
from plugins.gates.builtin import (
    FairnessGate,
    MetricThresholdGate,
    NoRegressionGate,
    ResidencyGate,
)

NO_PRODUCTION = GateContext(agent_region="eu", production=None)


def _candidate(metrics=None, lineage=None) -> Candidate:
    return Candidate(model="m", run_id=1, metrics=metrics or {}, lineage=lineage or {})


def _gate(cls, **options):
    return cls(cls.validate_options(options))


@pytest.mark.parametrize(
    ("options", "value", "passed", "reason"),
    [
        ({"min": 0.9}, 0.95, True, "accuracy is 0.9500, at least the minimum 0.9."),
        ({"min": 0.9}, 0.85, False, "accuracy is 0.8500, below the minimum 0.9."),
        ({"max": 0.1}, 0.2, False, "accuracy is 0.2000, above the maximum 0.1."),
        ({"min": 0.1, "max": 0.3}, 0.2, True, "accuracy is 0.2000, within [0.1, 0.3]."),
    ],
)
def test_metric_threshold(options, value, passed, reason):
    verdict = _gate(MetricThresholdGate, metric="accuracy", **options).evaluate(
        _candidate({"accuracy": value}), NO_PRODUCTION
    )
    assert verdict.passed is passed
    assert verdict.reason == reason


def test_metric_threshold_reads_per_class_values():
    gate = _gate(MetricThresholdGate, metric="recall_by_class.1", min=0.95)
    verdict = gate.evaluate(
        _candidate({"recall_by_class": {"0": 0.99, "1": 0.9}}), NO_PRODUCTION
    )
    assert verdict.passed is False
    assert verdict.reason == "recall_by_class.1 is 0.9000, below the minimum 0.95."


def test_missing_metric_fails():
    verdict = _gate(MetricThresholdGate, metric="auc", min=0.9).evaluate(
        _candidate({"accuracy": 1.0, "f1": 1.0}), NO_PRODUCTION
    )
    assert verdict.passed is False
    assert (
        verdict.reason == "The run reported no metric 'auc'; it reported: accuracy, f1."
    )


def test_threshold_options_are_checked():
    with pytest.raises(PluginConfigError, match="min 0.9 is greater than max 0.5"):
        MetricThresholdGate.validate_options({"metric": "a", "min": 0.9, "max": 0.5})
    with pytest.raises(PluginConfigError, match="unknown option 'minimum'"):
        MetricThresholdGate.validate_options({"metric": "a", "minimum": 0.9})
    with pytest.raises(PluginConfigError, match="min must be an int or float"):
        MetricThresholdGate.validate_options({"metric": "a", "min": "0.9"})


def test_no_regression_lower_is_better():
    production = GateContext(
        "eu", ProductionVersion(number=4, metrics={"loss": 0.20}, lineage={})
    )
    gate = _gate(
        NoRegressionGate, metric="loss", tolerance=0.01, higher_is_better=False
    )
    assert gate.evaluate(_candidate({"loss": 0.205}), production).passed is True
    worse = gate.evaluate(_candidate({"loss": 0.25}), production)
    assert worse.passed is False
    assert worse.details["change"] == pytest.approx(-0.05)


def test_no_regression_without_baseline_metric_passes():
    production = GateContext("eu", ProductionVersion(number=2, metrics={}, lineage={}))
    verdict = _gate(NoRegressionGate, metric="f1").evaluate(
        _candidate({"f1": 0.5}), production
    )
    assert verdict.passed is True
    assert verdict.reason == "Production version 2 has no f1; nothing to compare."


def test_fairness_gate():
    lineage = {"dataset": {"sensitive_attribute": "group"}}
    gate = _gate(FairnessGate, max_gap=0.1)
    fair = gate.evaluate(_candidate({"fairness_gap": 0.05}, lineage), NO_PRODUCTION)
    unfair = gate.evaluate(_candidate({"fairness_gap": 0.25}, lineage), NO_PRODUCTION)
    missing = gate.evaluate(_candidate({}, lineage), NO_PRODUCTION)
    assert fair.passed is True
    assert unfair.passed is False
    assert (
        unfair.reason
        == "The demographic parity difference over 'group' is 0.2500, above the "
        "maximum 0.1."
    )
    assert missing.passed is False
    assert "set sensitive_attribute" in missing.reason


def test_residency_gate():
    gate = _gate(ResidencyGate)
    assert (
        gate.evaluate(
            _candidate(lineage={"data_regions": ["eu", "ch"]}), NO_PRODUCTION
        ).passed
        is True
    )
    blocked = gate.evaluate(_candidate(lineage={"data_regions": ["us"]}), NO_PRODUCTION)
    assert blocked.passed is False
    assert blocked.details == {"agent_region": "eu", "data_regions": ["us"]}
    assert (
        gate.evaluate(_candidate(lineage={"data_regions": []}), NO_PRODUCTION).passed
        is True
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a", 1.0),
        ("b.c", 2.0),
        ("b.d", None),
        ("nan", None),
        ("flag", None),
        ("text", None),
    ],
)
def test_metric_value(path, expected):
    metrics = {"a": 1, "b": {"c": 2.0}, "nan": float("nan"), "flag": True, "text": "x"}
    assert metric_value(metrics, path) == expected
