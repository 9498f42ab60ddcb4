"""The canary verdict: canary against stable on the statistics the store keeps.

Two checks can fail a canary at any time, because waiting cannot undo
them: non-finite outputs and requests that failed inside the model. The
other two are judged once the canary has run for ``window_seconds`` and
served ``min_requests`` logged requests: the error rate from feedback
labels (when both sides have ``min_labelled`` labels) and the p95
latency. A verdict is ``decided`` once it passes or fails.

The controller judges a canary on every analysis pass. ``hold_decision``
keeps the first decision, so that what people were notified of stays
true, and later passes replace only the figures. A passed canary whose
checks fail later becomes failed.

NOTE: the figures count from the canary's start, so a canary that
degrades late is caught only once the whole period crosses a limit: 90
wrong predictions after 5,000 good ones still pass the error-rate check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from agent.config import ReleasePolicySection


@dataclass(frozen=True)
class Check:
    """One comparison; ``passed`` is None when it was not made."""

    name: str
    passed: bool | None
    detail: str


@dataclass(frozen=True)
class Verdict:
    """A canary's verdict: the decision and the figures it was judged on.

    ``decided``, ``passed``, ``summary`` and ``decided_at`` are the decision.
    Once ``hold_decision`` has stored one, they keep the values of the pass
    that decided, until a failing check turns a passed verdict into a
    failed one. The figures (``elapsed_seconds``, ``stable``, ``canary``
    and ``checks``) are recomputed on every pass while the release is in
    canary, also after the decision, and ``measured_at`` is the time of
    that pass. So after a decision the figures can differ from the ones
    that the summary quotes.

    Attributes:
        decided: True once the canary passed or failed.
        passed: True or False once decided, None while waiting.
        summary: one sentence on the decision, or on what the canary waits for.
        elapsed_seconds: seconds from the canary's start to ``measured_at``.
        stable: ``store.predictions.version_stats`` of the stable version
            since the canary started.
        canary: the same statistics of the canary version.
        checks: the comparisons made on this pass.
        decided_at: Unix seconds of the pass that decided; None while waiting.
        measured_at: Unix seconds of the pass that computed the figures;
            None on a verdict that ``judge`` returned and nothing stored.
    """

    decided: bool
    passed: bool | None
    summary: str
    elapsed_seconds: float
    stable: dict[str, Any]
    canary: dict[str, Any]
    checks: list[Check] = field(default_factory=list)
    decided_at: float | None = None
    measured_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    policy: ReleasePolicySection,
    stable: dict[str, Any],
    canary: dict[str, Any],
    elapsed_seconds: float,
) -> Verdict:
    """Compare canary with stable statistics (``store.predictions.version_stats``)."""
    early = [_nonfinite(policy, canary), _server_errors(policy, canary)]
    failed = [check for check in early if check.passed is False]
    if failed:
        return _verdict(
            True, False, failed[0].detail, elapsed_seconds, stable, canary, early
        )
    waiting = _waiting(policy, canary, elapsed_seconds)
    if waiting is not None:
        return _verdict(False, None, waiting, elapsed_seconds, stable, canary, early)
    checks = [
        *early,
        _error_rate(policy, stable, canary),
        _latency(policy, stable, canary),
    ]
    failed = [check for check in checks if check.passed is False]
    if failed:
        summary = " ".join(check.detail for check in failed)
        return _verdict(True, False, summary, elapsed_seconds, stable, canary, checks)
    summary = (
        f"The canary passed after {elapsed_seconds:.0f} s and {canary['requests']} "
        "logged requests."
    )
    return _verdict(True, True, summary, elapsed_seconds, stable, canary, checks)


def hold_decision(
    stored: dict[str, Any] | None, judged: Verdict, now: float
) -> Verdict:
    """Return the verdict to store after a pass at ``now`` (Unix seconds).

    Args:
        stored: the verdict the release stores from the last pass (its
            ``as_dict()``), or None before the first pass.
        judged: this pass's result of ``judge``.
        now: the time of this pass; it becomes ``measured_at``, and
            ``decided_at`` when this pass decides.

    Returns:
        ``judged`` under the stored decision, if there is one. The stored
        decision is kept unless it passed and ``judged`` failed, because a
        failure after passing replaces it, decided at ``now``. A failed
        decision is kept even when later checks pass, so a canary that
        failed never turns into a passed one. A stored verdict without
        ``decided_at`` (from an agent before decisions were kept) counts as
        undecided.
    """
    judged = replace(judged, measured_at=now)
    has_decision = (
        stored is not None
        and stored.get("decided") is True
        and stored.get("decided_at") is not None
    )
    if has_decision and not (stored["passed"] and judged.passed is False):
        return replace(
            judged,
            decided=True,
            passed=stored["passed"],
            summary=stored["summary"],
            decided_at=stored["decided_at"],
        )
    if judged.decided:
        return replace(judged, decided_at=now)
    return judged


def _verdict(
    decided: bool,
    passed: bool | None,
    summary: str,
    elapsed_seconds: float,
    stable: dict[str, Any],
    canary: dict[str, Any],
    checks: list[Check],
) -> Verdict:
    return Verdict(
        decided=decided,
        passed=passed,
        summary=summary,
        elapsed_seconds=round(elapsed_seconds, 3),
        stable=stable,
        canary=canary,
        checks=checks,
    )


def _waiting(
    policy: ReleasePolicySection, canary: dict[str, Any], elapsed_seconds: float
) -> str | None:
    # Name only the conditions still unmet: "90 of 60 s" reads as a fault.
    unmet = []
    if elapsed_seconds < policy.window_seconds:
        unmet.append(f"{elapsed_seconds:.0f} of {policy.window_seconds:.0f} s")
    if canary["requests"] < policy.min_requests:
        unmet.append(
            f"{canary['requests']} of {policy.min_requests} logged canary requests"
        )
    if not unmet:
        return None
    return f"Waiting: {' and '.join(unmet)}."


def _nonfinite(policy: ReleasePolicySection, canary: dict[str, Any]) -> Check:
    count = canary["nonfinite_rows"]
    passed = count <= policy.max_nonfinite_outputs
    return Check(
        "nonfinite_outputs",
        passed,
        f"The canary produced {_plural(count, 'row')} of non-finite outputs; "
        f"the policy allows {policy.max_nonfinite_outputs}.",
    )


def _server_errors(policy: ReleasePolicySection, canary: dict[str, Any]) -> Check:
    count = canary["server_errors"]
    passed = count <= policy.max_server_errors
    return Check(
        "server_errors",
        passed,
        f"The canary failed {_plural(count, 'request')} inside the model; "
        f"the policy allows {policy.max_server_errors}.",
    )


def _error_rate(
    policy: ReleasePolicySection, stable: dict[str, Any], canary: dict[str, Any]
) -> Check:
    if min(stable["labelled"], canary["labelled"]) < policy.min_labelled:
        return Check(
            "error_rate",
            None,
            f"Not compared: the canary has {canary['labelled']} feedback labels and "
            f"stable {stable['labelled']}; each needs {policy.min_labelled}.",
        )
    increase = canary["error_rate"] - stable["error_rate"]
    return Check(
        "error_rate",
        increase <= policy.max_error_rate_increase,
        f"The canary's error rate is {canary['error_rate']:.2%} against "
        f"{stable['error_rate']:.2%} for stable (allowed increase "
        f"{policy.max_error_rate_increase * 100:g} points).",
    )


def _latency(
    policy: ReleasePolicySection, stable: dict[str, Any], canary: dict[str, Any]
) -> Check:
    stable_p95, canary_p95 = (
        stable["latency_p95_seconds"],
        canary["latency_p95_seconds"],
    )
    if stable_p95 is None or canary_p95 is None:
        return Check(
            "latency_p95",
            None,
            "Not compared: stable has no logged requests in the window.",
        )
    limit = stable_p95 * policy.max_latency_p95_ratio + policy.latency_slack_seconds
    return Check(
        "latency_p95",
        canary_p95 <= limit,
        f"The canary's p95 latency is {canary_p95 * 1000:.2f} ms against "
        f"{stable_p95 * 1000:.2f} ms for stable (limit {limit * 1000:.2f} ms: "
        f"{policy.max_latency_p95_ratio:g} x stable + "
        f"{policy.latency_slack_seconds * 1000:g} ms).",
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
