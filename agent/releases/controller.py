"""The release controller: requests, approvals, canaries, promotion, rollback.

Every action runs in one ``BEGIN IMMEDIATE`` transaction. It reads the
release, checks the state machine (``store.releases.TRANSITIONS``),
writes the release, the approvals and the deployment, and appends the
audit entries. So two people acting at once cause exactly one
transition, and a crash leaves all of it or none.

A model has at most one open (pending, approved or canary) release. Once
its approvals are in, a release goes to canary at once; a model with no
stable version has nothing to compare a canary with, so its first
release is deployed as stable directly. The serving worker follows the
``deployments`` row on its own (see ``agent.serving.worker.router``).

Runs in the agent's control process: nothing here imports torch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from agent.config import AgentConfig, ReleasePolicySection
from agent.releases import canary, checks
from agent.releases.errors import (
    InvalidTransition,
    SelfApproval,
)
from store import Store, alerts, audit
from store import deployments as deployment_rows
from store import predictions as prediction_rows
from store import releases as release_rows
from store import versions as version_rows
from store.releases import InvalidReleaseTransition, ReleaseAction, ReleaseState

logger = logging.getLogger(__name__)

CONTROLLER_ACTOR = "release-controller"


class ReleaseController:
    """Carries out release actions against the store.

    Args:
        store: the agent's store.
        config: read for each model's ``[models.release]`` policy; models
            not in the configuration get the defaults.
        on_deployment_change: called with the model name after a commit
            that changed what it serves (the serving service starts its
            worker on the first one).
        clock: Unix seconds, for canary windows.
    """

    def __init__(
        self,
        store: Store,
        config: AgentConfig,
        *,
        on_deployment_change: Callable[[str], None] = lambda model: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config
        self.on_deployment_change = on_deployment_change
        self.clock = clock

    def policy(self, model: str) -> ReleasePolicySection:
        section = self.config.model(model)
        return section.release if section is not None else ReleasePolicySection()

    # Actions.

    def request(
        self, model: str, version: int, actor: str, reason: str
    ) -> dict[str, Any]:
        """Open a pending release of ``version``; the version must be releasable."""
        row = checks.releasable_version(self.store.db, model, version)
        checks.verify_artifact(self.store, CONTROLLER_ACTOR, row)
        policy = self.policy(model)
        with self.store.write() as db:
            checks.check_no_open_release(db, model, version)
            release = release_rows.insert_release(
                db,
                model=model,
                version=version,
                requested_by=actor,
                reason=reason,
                approvals_required=policy.approvals_required,
                canary_weight=policy.canary_weight,
            )
            after = {"model": model, "version": version, "state": release["state"]}
            self._audit(db, actor, "release.request", release, reason, None, after)
        logger.info(
            "release %s: %s requested %s v%s", release["id"], actor, model, version
        )
        return release

    def approve(self, release_id: int, actor: str, reason: str) -> dict[str, Any]:
        """Record ``actor``'s approval; with enough of them, start the canary.

        Repeating an approval changes nothing and returns the release.
        """
        with self.store.write() as db:
            release = checks.get_release(db, release_id)
            decision = release_rows.find_decision(db, release_id, actor)
            if decision is not None and decision["decision"] == "approve":
                return release
            if actor == release["requested_by"]:
                raise SelfApproval(
                    f"{actor} requested release {release_id} and cannot also approve "
                    "it; another approver must."
                )
            checks.check_action(release, ReleaseAction.APPROVE)
            release_rows.add_approval(db, release_id, actor, "approve", reason)
            approvals = release_rows.count_approvals(db, release_id)
            self._audit(
                db,
                actor,
                "release.approval",
                release,
                reason,
                {"approvals": approvals - 1},
                {"approvals": approvals},
            )
            if approvals >= release["approvals_required"]:
                release = self._transition(
                    db, release, ReleaseAction.APPROVE, actor, reason
                )
                release = self._advance(db, release)
            else:
                release = checks.get_release(db, release_id)
        self._changed(release)
        return release

    def reject(self, release_id: int, actor: str, reason: str) -> dict[str, Any]:
        with self.store.write() as db:
            release = checks.get_release(db, release_id)
            checks.check_action(release, ReleaseAction.REJECT)
            release_rows.add_approval(db, release_id, actor, "reject", reason)
            release = self._transition(db, release, ReleaseAction.REJECT, actor, reason)
        return release

    def promote(self, release_id: int, actor: str, reason: str) -> dict[str, Any]:
        """Make a canary's version the stable version."""
        with self.store.write() as db:
            release = checks.get_release(db, release_id)
            checks.check_action(release, ReleaseAction.PROMOTE)
            release = self._promote(db, release, actor, reason)
        self._changed(release)
        return release

    def abort(self, release_id: int, actor: str, reason: str) -> dict[str, Any]:
        """End an approved release or a canary; traffic returns to stable."""
        with self.store.write() as db:
            release = self._abort(db, checks.get_release(db, release_id), actor, reason)
        self._changed(release)
        return release

    def abort_canary(
        self, model: str, actor: str, reason: str
    ) -> dict[str, Any] | None:
        """Abort the model's canary, if one runs; for drift monitors."""
        with self.store.write() as db:
            release = release_rows.open_release(db, model)
            if release is None or release["state"] != ReleaseState.CANARY:
                return None
            release = self._abort(db, release, actor, reason)
        self._changed(release)
        return release

    def rollback(self, model: str, actor: str, reason: str) -> dict[str, Any]:
        """Return ``model`` to its last known-good version and end any canary.

        Returns:
            The deployment history row of the rollback.
        """
        checks.check_model(self.store.db, model)
        with self.store.write() as db:
            before = deployment_rows.get_deployment(db, model)
            target = deployment_rows.rollback_target(db, model)
            checks.check_rollback_target(db, model, before, target)
            self._end_releases_for_rollback(db, model, before, actor, reason)
            change = deployment_rows.roll_back(db, model, actor=actor, reason=reason)
            audit.append_entry(
                db,
                actor=actor,
                action="deployment.rollback",
                target=f"model/{model}",
                reason=reason,
                before=_deployment_state(before),
                after=_deployment_state(change),
            )
        logger.info(
            "model %s rolled back by %s from version %s to version %s",
            model,
            actor,
            before["stable_version"],
            change["stable_version"],
        )
        self.on_deployment_change(model)
        return change

    # The periodic step.

    def analyse(self) -> list[dict[str, Any]]:
        """Judge every canary, take the policy's automatic actions, return verdicts."""
        verdicts = []
        for release in release_rows.releases_in_state(
            self.store.db, ReleaseState.CANARY
        ):
            try:
                verdicts.append(self._analyse_one(release))
            except (InvalidReleaseTransition, InvalidTransition):
                # Someone acted on the release between the read and the write.
                logger.debug("release %s changed during its analysis", release["id"])
        self._alert_on_stable_load_errors()
        return verdicts

    def _analyse_one(self, release: dict[str, Any]) -> dict[str, Any]:
        model, number = release["model"], release["version"]
        version = version_rows.find_version(self.store.db, model, number)
        if version is not None and version["load_error"]:
            reason = f"Version {number} cannot serve: {version['load_error']}"
            self.abort(release["id"], CONTROLLER_ACTOR, reason)
            return {"release_id": release["id"], "aborted": reason}
        now = self.clock()
        judged = self._judge(release, now)
        with self.store.write() as db:
            current = checks.get_release(db, release["id"])
            if current["state"] != ReleaseState.CANARY:
                return {"release_id": release["id"], "state": current["state"]}
            stored = current["verdict"]
            verdict = canary.hold_decision(stored, judged, now)
            verdict_row = verdict.as_dict()
            release_rows.set_verdict(db, release["id"], verdict_row)
            if verdict.decided:
                newly_decided = _decision(stored) != _decision(verdict_row)
                current = self._act_on_verdict(db, current, verdict, newly_decided)
        self._changed(current)
        return {"release_id": release["id"], **verdict_row}

    def _judge(self, release: dict[str, Any], now: float) -> canary.Verdict:
        model, since = release["model"], release["canary_started_at"]
        deployment = deployment_rows.get_deployment(self.store.db, model)
        stable = prediction_rows.version_stats(
            self.store.db, model, deployment["stable_version"], since
        )
        canary_stats = prediction_rows.version_stats(
            self.store.db, model, release["version"], since
        )
        policy = self.policy(model)
        return canary.judge(policy, stable, canary_stats, now - since)

    def _act_on_verdict(
        self,
        db: Any,
        release: dict[str, Any],
        verdict: canary.Verdict,
        newly_decided: bool,
    ) -> dict[str, Any]:
        if newly_decided:
            logger.info(
                "release %s (%s v%s): canary %s: %s",
                release["id"],
                release["model"],
                release["version"],
                "passed" if verdict.passed else "failed",
                verdict.summary,
            )
        policy = self.policy(release["model"])
        if verdict.passed and policy.auto_promote:
            return self._promote(db, release, CONTROLLER_ACTOR, verdict.summary)
        if not verdict.passed and policy.auto_abort:
            return self._abort(db, release, CONTROLLER_ACTOR, verdict.summary)
        # One alert per failed decision: raising it on every analysis pass
        # would open a new one right after someone acknowledged it.
        if not verdict.passed and newly_decided:
            alerts.raise_alert(
                db,
                kind="canary_failed",
                severity="warning",
                source=f"release/{release['id']}",
                message=(
                    f"The canary of {release['model']} version {release['version']} "
                    f"failed and waits for an approver to abort it: {verdict.summary}"
                ),
            )
        return release

    # Steps inside a transaction.

    def _advance(self, db: Any, release: dict[str, Any]) -> dict[str, Any]:
        """Start the canary of a just-approved release, or deploy a first version."""
        model, number = release["model"], release["version"]
        version = version_rows.find_version(db, model, number)
        if version is None or version["load_error"]:
            detail = version["load_error"] if version else "the version is missing"
            return self._abort(
                db, release, CONTROLLER_ACTOR, f"It cannot serve: {detail}"
            )
        deployment = deployment_rows.get_deployment(db, model)
        if deployment is None or deployment["stable_version"] is None:
            reason = "The model had no stable version, so there was no canary."
            release = self._transition(
                db, release, ReleaseAction.DEPLOY, CONTROLLER_ACTOR, reason
            )
            deployment_rows.promote(
                db,
                model,
                number,
                release_id=release["id"],
                actor=CONTROLLER_ACTOR,
                reason=reason,
            )
            return release
        weight = release["canary_weight"]
        release = self._transition(
            db,
            release,
            ReleaseAction.START_CANARY,
            CONTROLLER_ACTOR,
            f"Serving {weight:.0%} of requests beside version "
            f"{deployment['stable_version']}.",
            canary_started_at=self.clock(),
        )
        deployment_rows.start_canary(
            db,
            model,
            number,
            weight,
            release_id=release["id"],
            actor=CONTROLLER_ACTOR,
            reason=None,
        )
        return release

    def _promote(
        self, db: Any, release: dict[str, Any], actor: str, reason: str
    ) -> dict[str, Any]:
        release = self._transition(db, release, ReleaseAction.PROMOTE, actor, reason)
        deployment_rows.promote(
            db,
            release["model"],
            release["version"],
            release_id=release["id"],
            actor=actor,
            reason=reason,
        )
        return release

    def _abort(
        self, db: Any, release: dict[str, Any], actor: str, reason: str
    ) -> dict[str, Any]:
        was_canary = release["state"] == ReleaseState.CANARY
        release = self._transition(db, release, ReleaseAction.ABORT, actor, reason)
        if was_canary:
            deployment_rows.clear_canary(
                db, release["model"], actor=actor, reason=reason
            )
        return release

    def _transition(
        self,
        db: Any,
        release: dict[str, Any],
        action: ReleaseAction,
        actor: str,
        reason: str | None,
        **fields: Any,
    ) -> dict[str, Any]:
        try:
            after = release_rows.transition(
                db, release["id"], action, actor=actor, reason=reason, **fields
            )
        except InvalidReleaseTransition as error:
            raise InvalidTransition(str(error)) from None
        self._audit(
            db,
            actor,
            f"release.{action}",
            release,
            reason,
            {"state": release["state"]},
            {"state": after["state"]},
        )
        logger.info(
            "release %s (%s v%s): %s -> %s by %s",
            release["id"],
            release["model"],
            release["version"],
            release["state"],
            after["state"],
            actor,
        )
        return after

    def _end_releases_for_rollback(
        self, db: Any, model: str, before: dict[str, Any], actor: str, reason: str
    ) -> None:
        open_release = release_rows.open_release(db, model)
        if open_release is not None and open_release["state"] != ReleaseState.PENDING:
            self._transition(db, open_release, ReleaseAction.ABORT, actor, reason)
        promoted = release_rows.promoted_release(db, model, before["stable_version"])
        if promoted is not None:
            self._transition(db, promoted, ReleaseAction.ROLL_BACK, actor, reason)

    def _alert_on_stable_load_errors(self) -> None:
        rows = self.store.db.conn.execute(
            "SELECT d.model, d.stable_version, v.load_error FROM deployments d "
            "JOIN versions v ON v.model = d.model AND v.number = d.stable_version "
            "WHERE v.load_error IS NOT NULL"
        ).fetchall()
        if not rows:
            return
        with self.store.write() as db:
            for model, number, error in rows:
                alerts.raise_alert(
                    db,
                    kind="stable_load_failed",
                    severity="critical",
                    source=f"model/{model}/version/{number}",
                    message=(
                        f"The stable version {number} of {model} cannot serve: {error}"
                    ),
                )

    def _audit(
        self,
        db: Any,
        actor: str,
        action: str,
        release: dict[str, Any],
        reason: str | None,
        before: Any,
        after: Any,
    ) -> None:
        audit.append_entry(
            db,
            actor=actor,
            action=action,
            target=f"release/{release['id']}",
            reason=reason,
            before=before,
            after=after,
        )

    def _changed(self, release: dict[str, Any]) -> None:
        if release["state"] in (
            ReleaseState.CANARY,
            ReleaseState.PROMOTED,
            ReleaseState.ABORTED,
        ):
            self.on_deployment_change(release["model"])


def _decision(verdict: dict[str, Any] | None) -> tuple[Any, Any]:
    if verdict is None:
        return (None, None)
    return (verdict.get("passed"), verdict.get("decided_at"))


def _deployment_state(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "stable_version": row["stable_version"],
        "canary_version": row["canary_version"],
        "canary_weight": row["canary_weight"],
    }
