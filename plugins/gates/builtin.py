"""The four built-in gates. Each reason names the numbers it compared."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from plugins._options import check_keys, check_type
from plugins.interface import (
    Candidate,
    Gate,
    GateContext,
    GateVerdict,
    PluginConfigError,
    metric_value,
)


class MetricThresholdGate(Gate):
    """Options: ``metric`` (``accuracy``, ``recall_by_class.1``), ``min``, ``max``.

    At least one bound is required; a missing metric fails the gate.
    """

    name = "metric-threshold"

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        where = "metric-threshold gate"
        check_keys(where, options, required=("metric",), optional=("min", "max"))
        check_type(where, "metric", options["metric"], str)
        if "min" not in options and "max" not in options:
            raise PluginConfigError(
                f"{where}: set min, max or both for {options['metric']!r}."
            )
        for key in ("min", "max"):
            if key in options:
                _check_finite(where, key, options[key])
        if "min" in options and "max" in options and options["min"] > options["max"]:
            raise PluginConfigError(
                f"{where}: min {options['min']} is greater than max {options['max']}."
            )
        return dict(options)

    def evaluate(self, candidate: Candidate, context: GateContext) -> GateVerdict:
        metric = self.options["metric"]
        value = metric_value(candidate.metrics, metric)
        if value is None:
            return _missing_metric(metric, candidate.metrics)
        low, high = self.options.get("min"), self.options.get("max")
        details = {"metric": metric, "value": value, "min": low, "max": high}
        if low is not None and value < low:
            return GateVerdict(
                False, f"{metric} is {value:.4f}, below the minimum {low}.", details
            )
        if high is not None and value > high:
            return GateVerdict(
                False, f"{metric} is {value:.4f}, above the maximum {high}.", details
            )
        return GateVerdict(
            True, f"{metric} is {value:.4f}, {_bounds_text(low, high)}.", details
        )


class NoRegressionGate(Gate):
    """Options: ``metric``, ``tolerance`` (absolute, 0), ``higher_is_better`` (true).

    Compares with the production version (``deployments.stable_version``).
    With no production version, or one without the metric, it passes with
    a reason that states this.
    """

    name = "no-regression"

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        where = "no-regression gate"
        check_keys(
            where,
            options,
            required=("metric",),
            optional=("tolerance", "higher_is_better"),
        )
        check_type(where, "metric", options["metric"], str)
        tolerance = options.get("tolerance", 0.0)
        _check_finite(where, "tolerance", tolerance)
        if tolerance < 0:
            raise PluginConfigError(
                f"{where}: tolerance must be 0 or more (got {tolerance!r})."
            )
        higher_is_better = options.get("higher_is_better", True)
        check_type(where, "higher_is_better", higher_is_better, bool)
        return {
            "metric": options["metric"],
            "tolerance": float(tolerance),
            "higher_is_better": higher_is_better,
        }

    def evaluate(self, candidate: Candidate, context: GateContext) -> GateVerdict:
        metric, tolerance = self.options["metric"], self.options["tolerance"]
        value = metric_value(candidate.metrics, metric)
        if value is None:
            return _missing_metric(metric, candidate.metrics)
        production = context.production
        if production is None:
            return GateVerdict(
                True,
                f"No version is in production, so {metric} {value:.4f} has no "
                "baseline.",
                {"metric": metric, "value": value, "baseline": None},
            )
        baseline = metric_value(production.metrics, metric)
        details = {
            "metric": metric,
            "value": value,
            "baseline": baseline,
            "baseline_version": production.number,
            "tolerance": tolerance,
        }
        if baseline is None:
            return GateVerdict(
                True,
                f"Production version {production.number} has no {metric}; nothing to "
                "compare.",
                details,
            )
        change = (
            value - baseline if self.options["higher_is_better"] else baseline - value
        )
        details["change"] = change
        text = (
            f"{metric} is {value:.4f} against {baseline:.4f} for production version "
            f"{production.number} (tolerance {tolerance})"
        )
        if change < -tolerance:
            return GateVerdict(False, f"{text}: a regression.", details)
        return GateVerdict(True, f"{text}: no regression.", details)


class FairnessGate(Gate):
    """Options: ``max_gap`` (default 0.1), the largest demographic parity difference.

    Reads the ``fairness_gap`` metric, which recipes report when the
    dataset section names a ``sensitive_attribute``; without it the gate fails.
    """

    name = "fairness"

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        where = "fairness gate"
        check_keys(where, options, required=(), optional=("max_gap",))
        max_gap = options.get("max_gap", 0.1)
        _check_finite(where, "max_gap", max_gap)
        if not 0 <= max_gap <= 1:
            raise PluginConfigError(
                f"{where}: max_gap must be in [0, 1] (got {max_gap!r})."
            )
        return {"max_gap": float(max_gap)}

    def evaluate(self, candidate: Candidate, context: GateContext) -> GateVerdict:
        max_gap = self.options["max_gap"]
        gap = metric_value(candidate.metrics, "fairness_gap")
        attribute = candidate.lineage.get("dataset", {}).get("sensitive_attribute")
        if gap is None:
            return GateVerdict(
                False,
                "The run reported no fairness_gap; set sensitive_attribute in the "
                "model's [models.dataset] section.",
                {"max_gap": max_gap},
            )
        details = {
            "fairness_gap": gap,
            "max_gap": max_gap,
            "sensitive_attribute": attribute,
        }
        text = f"The demographic parity difference over {attribute!r} is {gap:.4f}"
        if gap > max_gap:
            return GateVerdict(False, f"{text}, above the maximum {max_gap}.", details)
        return GateVerdict(True, f"{text}, within the maximum {max_gap}.", details)


class ResidencyGate(Gate):
    """No options. Passes when this agent's region is one the training data may go to.

    The regions come from ``[models.dataset] regions`` and are recorded in
    the version's lineage; an empty list means the data is unrestricted.
    """

    name = "residency"

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        check_keys("residency gate", options, required=(), optional=())
        return {}

    def evaluate(self, candidate: Candidate, context: GateContext) -> GateVerdict:
        regions = list(candidate.lineage.get("data_regions") or [])
        region = context.agent_region
        details = {"agent_region": region, "data_regions": regions}
        if not regions:
            return GateVerdict(
                True, "The training data has no residency restriction.", details
            )
        if region in regions:
            return GateVerdict(
                True, f"This agent's region {region!r} is one of {regions}.", details
            )
        return GateVerdict(
            False,
            f"This agent's region {region!r} is not one the training data may go to "
            f"({', '.join(regions)}).",
            details,
        )


def _missing_metric(metric: str, metrics: Mapping[str, Any]) -> GateVerdict:
    return GateVerdict(
        False,
        f"The run reported no metric {metric!r}; it reported: "
        f"{', '.join(sorted(metrics)) or 'none'}.",
        {"metric": metric},
    )


def _bounds_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"within [{low}, {high}]"
    if low is not None:
        return f"at least the minimum {low}"
    return f"at most the maximum {high}"


def _check_finite(where: str, key: str, value: Any) -> None:
    check_type(where, key, value, (int, float))
    if not math.isfinite(value):
        raise PluginConfigError(
            f"{where}: {key} must be a finite number (got {value!r})."
        )
