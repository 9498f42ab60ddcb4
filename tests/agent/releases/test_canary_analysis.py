"""Canary verdicts from logged predictions and feedback, and what the policy does."""

from __future__ import annotations

import json

import pytest

from agent.config import ReleasePolicySection
from agent.releases import CONTROLLER_ACTOR
from agent.releases.canary import judge
from store import alerts
from store import deployments as deployment_rows
from store import predictions as prediction_rows
from store import releases as release_rows


def _stats(**values) -> dict:
    stats = {
        "requests": 100,
        "rows": 100,
        "server_errors": 0,
        "nonfinite_rows": 0,
        "latency_p95_seconds": 0.010,
        "labelled": 50,
        "label_errors": 5,
        "error_rate": 0.1,
    }
    stats.update(values)
    return stats


POLICY = ReleasePolicySection(window_seconds=60, min_requests=100, min_labelled=20)


def test_verdict_waits_for_window_and_requests():
    early = judge(POLICY, _stats(), _stats(), elapsed_seconds=30)
    few = judge(POLICY, _stats(), _stats(requests=40), elapsed_seconds=90)
    both = judge(POLICY, _stats(), _stats(requests=40), elapsed_seconds=30)

    assert (early.decided, early.passed) == (False, None)
    assert early.summary == "Waiting: 30 of 60 s."
    assert (few.decided, few.passed) == (False, None)
    assert few.summary == "Waiting: 40 of 100 logged canary requests."
    assert both.summary == "Waiting: 30 of 60 s and 40 of 100 logged canary requests."


def test_nonfinite_outputs_fail_at_once():
    verdict = judge(POLICY, _stats(), _stats(nonfinite_rows=3), elapsed_seconds=1)

    assert (verdict.decided, verdict.passed) == (True, False)
    assert verdict.summary == (
        "The canary produced 3 rows of non-finite outputs; the policy allows 0."
    )


def test_server_errors_fail_at_once():
    verdict = judge(POLICY, _stats(), _stats(server_errors=1), elapsed_seconds=1)

    assert (verdict.decided, verdict.passed) == (True, False)
    assert verdict.summary == (
        "The canary failed 1 request inside the model; the policy allows 0."
    )


def test_error_rate_increase_fails():
    verdict = judge(POLICY, _stats(), _stats(error_rate=0.13), elapsed_seconds=60)

    assert (verdict.decided, verdict.passed) == (True, False)
    assert verdict.summary == (
        "The canary's error rate is 13.00% against 10.00% for stable (allowed "
        "increase 2 points)."
    )


def test_error_rate_needs_labels():
    verdict = judge(
        POLICY, _stats(labelled=5), _stats(error_rate=0.9), elapsed_seconds=60
    )

    check = next(check for check in verdict.checks if check.name == "error_rate")
    assert check.passed is None
    assert check.detail == (
        "Not compared: the canary has 50 feedback labels and stable 5; each needs 20."
    )
    assert verdict.passed is True


def test_slow_canary_fails():
    verdict = judge(
        POLICY, _stats(), _stats(latency_p95_seconds=0.021), elapsed_seconds=60
    )

    assert verdict.passed is False
    assert verdict.summary == (
        "The canary's p95 latency is 21.00 ms against 10.00 ms for stable (limit "
        "20.00 ms: 1.5 x stable + 5 ms)."
    )


def test_healthy_canary_passes():
    verdict = judge(
        POLICY, _stats(), _stats(latency_p95_seconds=0.019), elapsed_seconds=61
    )

    assert (verdict.decided, verdict.passed) == (True, True)
    assert verdict.summary == "The canary passed after 61 s and 100 logged requests."
    assert [check.passed for check in verdict.checks] == [True, True, True, True]


# Through the controller, with rows in the store.


def _log(store, version: int, count: int, *, start: int, ts: float, **row) -> None:
    """Insert ``count`` one-row requests served by ``version``, with label 1."""
    rows = [
        (
            "m",
            version,
            f"r{start + index}",
            0,
            ts,
            "[0.0, 0.0, 0.0]",
            json.dumps({"label": row.get("label", 1), "probabilities": [0.2, 0.8]}),
            row.get("latency", 0.004),
            row.get("status", 200),
            row.get("nonfinite", 0),
        )
        for index in range(count)
    ]
    with store.write() as db:
        prediction_rows.insert_predictions(db, rows)


def _feedback(store, keys: range, label: str) -> None:
    with store.write() as db:
        prediction_rows.insert_feedback(db, "m", [(f"r{i}", label) for i in keys], 0.0)


def _canary(setup) -> dict:
    setup.add_version()
    setup.add_version()
    first = setup.controller.request("m", 1, "olga", "first")
    setup.controller.approve(first["id"], "anna", "go")
    release = setup.controller.request("m", 2, "olga", "retrained")
    return setup.controller.approve(release["id"], "anna", "go")


POLICY_LINES = "window_seconds = 60\nmin_requests = 50\nmin_labelled = 10\n"


def test_passing_canary_is_promoted_when_policy_says(releases):
    setup = releases(POLICY_LINES + "auto_promote = true")
    release = _canary(setup)
    since = release["canary_started_at"]
    _log(setup.store, 1, 150, start=0, ts=since + 1)
    _log(setup.store, 2, 50, start=1000, ts=since + 1)
    _feedback(setup.store, range(0, 20), "1")
    _feedback(setup.store, range(1000, 1020), "1")

    setup.now[0] = since + 30
    waiting = setup.controller.analyse()
    setup.now[0] = since + 61
    decided = setup.controller.analyse()

    assert waiting[0]["decided"] is False
    assert waiting[0]["canary"]["requests"] == 50
    assert decided[0]["passed"] is True
    assert decided[0]["canary"]["labelled"] == 20
    assert decided[0]["canary"]["error_rate"] == 0.0
    after = release_rows.get_release(setup.store.db, release["id"])
    assert after["state"] == "promoted"
    assert after["state_changed_by"] == CONTROLLER_ACTOR
    assert after["verdict"]["passed"] is True
    assert deployment_rows.get_deployment(setup.store.db, "m")["stable_version"] == 2


def test_passing_canary_waits_for_approver(releases):
    setup = releases(POLICY_LINES)
    release = _canary(setup)
    since = release["canary_started_at"]
    _log(setup.store, 1, 50, start=0, ts=since + 1)
    _log(setup.store, 2, 50, start=1000, ts=since + 1)
    setup.now[0] = since + 61

    setup.controller.analyse()

    after = release_rows.get_release(setup.store.db, release["id"])
    assert after["state"] == "canary"
    assert after["verdict"]["decided"] is True
    assert after["verdict"]["passed"] is True


def test_failing_canary_is_aborted(releases):
    setup = releases(POLICY_LINES)
    release = _canary(setup)
    since = release["canary_started_at"]
    _log(setup.store, 1, 50, start=0, ts=since + 1)
    _log(setup.store, 2, 50, start=1000, ts=since + 1, label=0)
    _feedback(setup.store, range(0, 20), "1")
    _feedback(setup.store, range(1000, 1020), "1")
    setup.now[0] = since + 61

    setup.controller.analyse()

    after = release_rows.get_release(setup.store.db, release["id"])
    assert after["state"] == "aborted"
    assert after["state_reason"] == (
        "The canary's error rate is 100.00% against 0.00% for stable (allowed "
        "increase 2 points)."
    )
    deployment = deployment_rows.get_deployment(setup.store.db, "m")
    assert (deployment["stable_version"], deployment["canary_version"]) == (1, None)


def test_failing_canary_waits_when_auto_abort_is_off(releases):
    setup = releases(POLICY_LINES + "auto_abort = false")
    release = _canary(setup)
    since = release["canary_started_at"]
    _log(setup.store, 2, 3, start=1000, ts=since + 1, nonfinite=1)
    setup.now[0] = since + 1

    setup.controller.analyse()

    after = release_rows.get_release(setup.store.db, release["id"])
    assert after["state"] == "canary"
    assert after["verdict"]["passed"] is False
    open_alerts = alerts.list_alerts(setup.store.db, open_only=True)
    assert [(a["kind"], a["source"]) for a in open_alerts] == [
        ("canary_failed", f"release/{release['id']}")
    ]


def test_rows_before_canary_start_are_ignored(releases):
    setup = releases(POLICY_LINES)
    release = _canary(setup)
    since = release["canary_started_at"]
    _log(setup.store, 2, 10, start=1000, ts=since - 5, status=500)
    setup.now[0] = since + 1

    verdicts = setup.controller.analyse()

    assert verdicts[0]["canary"]["requests"] == 0
    assert verdicts[0]["decided"] is False


def test_canary_that_failed_to_load_is_aborted(releases):
    setup = releases(POLICY_LINES + "auto_abort = false")
    release = _canary(setup)
    with setup.store.write() as db:
        deployment_rows.mark_load_error(db, "m", 2, "RuntimeError: bad tensor")

    setup.controller.analyse()

    after = release_rows.get_release(setup.store.db, release["id"])
    assert after["state"] == "aborted"
    assert after["state_reason"] == "Version 2 cannot serve: RuntimeError: bad tensor"


def test_latency_p95_is_computed_per_request(releases):
    setup = releases()
    setup.add_version()
    rows = [
        ("m", 1, f"q{i}", 0, 10.0, "[]", "null", latency, 200, 0)
        for i, latency in enumerate([0.001 * n for n in range(1, 21)])
    ]
    # Rows 1..63 of a batch carry the batch's latency but are not requests.
    rows += [
        ("m", 1, f"b/{i}", i, 10.0, "[]", "null", 9.0, 200, 0) for i in range(1, 64)
    ]
    with setup.store.write() as db:
        prediction_rows.insert_predictions(db, rows)

    stats = prediction_rows.version_stats(setup.store.db, "m", 1, since=0.0)

    assert stats["requests"] == 20
    assert stats["rows"] == 83
    assert stats["latency_p95_seconds"] == pytest.approx(0.019)


# A decided verdict keeps its decision while its figures keep updating.


def _passed_canary(setup) -> tuple[dict, dict]:
    """Start a canary that passes on the first analysis at canary start + 61 s."""
    release = _canary(setup)
    since = release["canary_started_at"]
    _log(setup.store, 1, 50, start=0, ts=since + 1)
    _log(setup.store, 2, 50, start=1000, ts=since + 1)
    setup.now[0] = since + 61
    setup.controller.analyse()
    return release, release_rows.get_release(setup.store.db, release["id"])["verdict"]


def test_passed_verdict_keeps_summary_as_traffic_grows(releases):
    setup = releases(POLICY_LINES)
    release, first = _passed_canary(setup)
    since = release["canary_started_at"]
    _log(setup.store, 1, 200, start=2000, ts=since + 70)
    _log(setup.store, 2, 180, start=3000, ts=since + 70)
    setup.now[0] = since + 240

    returned = setup.controller.analyse()

    later = release_rows.get_release(setup.store.db, release["id"])
    assert first["passed"] is True
    assert first["summary"] == "The canary passed after 61 s and 50 logged requests."
    assert first["decided_at"] == since + 61
    assert first["measured_at"] == since + 61
    assert later["state"] == "canary"
    assert later["verdict"]["decided"] is True
    assert later["verdict"]["passed"] is True
    assert later["verdict"]["summary"] == first["summary"]
    assert later["verdict"]["decided_at"] == since + 61
    assert later["verdict"]["measured_at"] == since + 240
    assert later["verdict"]["elapsed_seconds"] == 240
    assert later["verdict"]["canary"]["requests"] == 230
    assert later["verdict"]["stable"]["requests"] == 250
    assert returned[0]["summary"] == first["summary"]
    assert returned[0]["canary"]["requests"] == 230


def test_passed_verdict_turns_failed_on_server_errors(releases):
    setup = releases(POLICY_LINES + "auto_abort = false")
    release, first = _passed_canary(setup)
    since = release["canary_started_at"]
    _log(setup.store, 2, 2, start=2000, ts=since + 70, status=500)
    setup.now[0] = since + 90

    setup.controller.analyse()
    failed = release_rows.get_release(setup.store.db, release["id"])
    _log(setup.store, 2, 3, start=3000, ts=since + 95, status=500)
    setup.now[0] = since + 100
    setup.controller.analyse()
    later = release_rows.get_release(setup.store.db, release["id"])

    assert first["passed"] is True
    assert failed["state"] == "canary"
    assert failed["verdict"]["decided"] is True
    assert failed["verdict"]["passed"] is False
    assert failed["verdict"]["summary"] == (
        "The canary failed 2 requests inside the model; the policy allows 0."
    )
    assert failed["verdict"]["decided_at"] == since + 90
    assert later["verdict"]["passed"] is False
    assert later["verdict"]["summary"] == failed["verdict"]["summary"]
    assert later["verdict"]["decided_at"] == since + 90
    assert later["verdict"]["canary"]["server_errors"] == 5
    open_alerts = alerts.list_alerts(setup.store.db, open_only=True)
    assert [(a["kind"], a["source"]) for a in open_alerts] == [
        ("canary_failed", f"release/{release['id']}")
    ]
    assert open_alerts[0]["message"].endswith(failed["verdict"]["summary"])


def test_passed_verdict_turning_failed_aborts(releases):
    setup = releases(POLICY_LINES)
    release, first = _passed_canary(setup)
    since = release["canary_started_at"]
    _log(setup.store, 2, 1, start=2000, ts=since + 70, nonfinite=1)
    setup.now[0] = since + 90

    setup.controller.analyse()

    after = release_rows.get_release(setup.store.db, release["id"])
    assert first["passed"] is True
    assert after["state"] == "aborted"
    assert after["state_changed_by"] == CONTROLLER_ACTOR
    assert after["state_reason"] == (
        "The canary produced 1 row of non-finite outputs; the policy allows 0."
    )
    assert after["verdict"]["passed"] is False
    assert after["verdict"]["decided_at"] == since + 90
    deployment = deployment_rows.get_deployment(setup.store.db, "m")
    assert (deployment["stable_version"], deployment["canary_version"]) == (1, None)


def test_failed_verdict_stays_failed_when_checks_recover(releases):
    setup = releases(POLICY_LINES + "auto_abort = false\nauto_promote = true")
    release = _canary(setup)
    since = release["canary_started_at"]
    _log(setup.store, 1, 50, start=0, ts=since + 1)
    _log(setup.store, 2, 50, start=1000, ts=since + 1, latency=0.5)
    setup.now[0] = since + 61
    setup.controller.analyse()
    failed = release_rows.get_release(setup.store.db, release["id"])
    # Fast canary requests bring its p95 latency back under the limit.
    _log(setup.store, 2, 2000, start=2000, ts=since + 70)
    setup.now[0] = since + 120

    setup.controller.analyse()

    later = release_rows.get_release(setup.store.db, release["id"])
    latency = next(c for c in later["verdict"]["checks"] if c["name"] == "latency_p95")
    assert failed["verdict"]["passed"] is False
    assert latency["passed"] is True
    assert later["state"] == "canary"
    assert later["verdict"]["passed"] is False
    assert later["verdict"]["summary"] == failed["verdict"]["summary"]
    assert later["verdict"]["decided_at"] == since + 61


def test_acknowledged_canary_alert_is_not_raised_again(releases):
    setup = releases(POLICY_LINES + "auto_abort = false")
    release = _canary(setup)
    since = release["canary_started_at"]
    _log(setup.store, 2, 3, start=1000, ts=since + 1, nonfinite=1)
    setup.now[0] = since + 1
    setup.controller.analyse()
    raised = alerts.list_alerts(setup.store.db, open_only=True)
    with setup.store.write() as db:
        alerts.acknowledge(db, raised[0]["id"], "anna")
    setup.now[0] = since + 2

    setup.controller.analyse()

    assert len(raised) == 1
    assert alerts.list_alerts(setup.store.db, open_only=True) == []


def test_verdict_without_decided_at_is_decided_again(releases):
    setup = releases(POLICY_LINES)
    release, first = _passed_canary(setup)
    since = release["canary_started_at"]
    older = {key: value for key, value in first.items() if key != "decided_at"}
    with setup.store.write() as db:
        release_rows.set_verdict(db, release["id"], older)
    setup.now[0] = since + 100

    setup.controller.analyse()

    after = release_rows.get_release(setup.store.db, release["id"])["verdict"]
    assert after["passed"] is True
    assert after["decided_at"] == since + 100
    assert after["summary"] == "The canary passed after 100 s and 50 logged requests."
