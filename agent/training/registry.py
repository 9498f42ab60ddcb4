"""Register a succeeded run as the next version of its model, gates included.

Registration verifies the artifact against its manifest, evaluates the
model's gates, and then, in one write transaction, moves the run to
``succeeded``, inserts version N+1 with its gate results and appends the
audit entry. If any step fails nothing is registered, and the caller
marks the run failed.

Runs in the agent's control process: nothing here imports torch.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

import plugins
from agent.config import AgentConfig, GateSection, ModelSection
from agent.training.launcher import RunPaths
from store import Store, alerts, audit, versions
from store import runs as run_rows
from store.artifacts import ArtifactError, verify_manifest
from store.versions import GateVerdictRow

logger = logging.getLogger(__name__)

REGISTRAR = "agent"


class RegistrationError(Exception):
    """A run that exited cleanly but cannot be registered as a version."""


class RegistrationCancelled(RegistrationError):
    """A cancel was requested while the run registered, so nothing was registered."""

    def __init__(self, run_id: int, requested_by: str | None) -> None:
        super().__init__(
            f"Run {run_id} was cancelled by {requested_by or 'an operator'} while it "
            "registered; no version was registered."
        )
        self.run_id = run_id
        self.requested_by = requested_by


def register_run(
    store: Store,
    config: AgentConfig,
    model: ModelSection,
    run: dict[str, Any],
    paths: RunPaths,
) -> dict[str, Any]:
    """Register ``run`` as the next version of ``model``; return the version row.

    Raises:
        RegistrationError: the result is missing or unreadable, or the
            artifact fails verification.
        RegistrationCancelled: a cancel of the run was requested before the
            version was written.
        store.runs.InvalidTransitionError: the run left ``running`` meanwhile
            (it was cancelled), so it must not register.
    """
    result = _read_result(paths)
    manifest = _verify(paths, result)
    lineage = build_lineage(config, run, result, paths)
    candidate = plugins.Candidate(
        model=model.name, run_id=run["id"], metrics=result["metrics"], lineage=lineage
    )
    verdicts = evaluate_gates(store, config, model, candidate)
    with store.write() as db:
        # Checked inside the write transaction: a cancel committed while the
        # gates ran is seen here, and a later one finds the run succeeded.
        current = run_rows.get_run(db, run["id"])
        if current["cancel_requested_at"] is not None:
            raise RegistrationCancelled(run["id"], current["cancel_requested_by"])
        run_rows.transition(
            db,
            run["id"],
            run_rows.RunState.SUCCEEDED,
            exit_code=0,
            metrics_json=result["metrics"],
            data_sha256=result["data_sha256"],
            error=None,
        )
        version = versions.insert_version(
            db,
            model=model.name,
            run_id=run["id"],
            artifact_path=str(paths.artifact_dir),
            artifact_sha256=manifest.sha256(result["weights_file"]),
            metrics=result["metrics"],
            lineage=lineage,
            reference=result["reference"],
            verdicts=verdicts,
        )
        target = f"model/{model.name}/version/{version['number']}"
        audit.append_entry(
            db,
            actor=REGISTRAR,
            action="version.register",
            target=target,
            after={
                "run_id": run["id"],
                "artifact_sha256": version["artifact_sha256"],
                "gate_state": version["gate_state"],
            },
        )
        if version["gate_state"] == "failed":
            failed = ", ".join(
                verdict.gate for verdict in verdicts if not verdict.passed
            )
            alerts.raise_alert(
                db,
                kind="gate_failed",
                severity="warning",
                source=target,
                message=f"Version {version['number']} of {model.name} failed "
                f"gates: {failed}.",
            )
    return version


def evaluate_gates(
    store: Store, config: AgentConfig, model: ModelSection, candidate: plugins.Candidate
) -> list[GateVerdictRow]:
    """Run every configured gate; one that raises fails with the error as its reason."""
    context = plugins.GateContext(
        agent_region=config.agent.region,
        production=production_version(store, model.name),
    )
    return [_evaluate(section, candidate, context) for section in model.gates]


def production_version(store: Store, model: str) -> plugins.ProductionVersion | None:
    number = versions.stable_version(store.db, model)
    if number is None:
        return None
    row = versions.find_version(store.db, model, number)
    if row is None:
        return None
    return plugins.ProductionVersion(
        number=number, metrics=row["metrics"], lineage=row["lineage"]
    )


def gate_label(section: GateSection) -> str:
    """Name a gate result like ``metric-threshold(accuracy)``; two thresholds differ."""
    metric = section.options.get("metric")
    return f"{section.plugin}({metric})" if metric else section.plugin


def build_lineage(
    config: AgentConfig, run: dict[str, Any], result: dict[str, Any], paths: RunPaths
) -> dict[str, Any]:
    """Return what a version records about how it was made."""
    spec = run["spec"] or {}
    dataset = dict(spec.get("dataset", {}))
    dataset["features"] = result["features"]
    dataset["target"] = result["target"]
    return {
        "run_id": run["id"],
        "job": run["job"],
        "trigger": run["trigger"],
        "requested_by": run["requested_by"],
        "data_sha256": result["data_sha256"],
        "data_rows": result["rows"],
        "feedback_rows": result["feedback_rows"],
        "dataset": dataset,
        "data_regions": dataset.get("regions", []),
        "recipe": spec.get("recipe", {}),
        "code_revision": result["code_revision"],
        "software": result["software"],
        "host": {
            "hostname": result.get("hostname") or socket.gethostname(),
            "agent": config.agent.name,
            "region": config.agent.region,
        },
        "gpus": run["gpus"],
        "artifact": {"directory": str(paths.artifact_dir), "files": result["files"]},
        "started_at": run["started_at"],
        "finished_at": result["finished_at"],
    }


def _evaluate(
    section: GateSection, candidate: plugins.Candidate, context: plugins.GateContext
) -> GateVerdictRow:
    label = gate_label(section)
    try:
        gate = plugins.load("gate", section.plugin)(section.options)
        verdict = gate.evaluate(candidate, context)
        if not isinstance(verdict, plugins.GateVerdict):
            raise TypeError(
                f"evaluate() returned {type(verdict).__name__}, not GateVerdict"
            )
        json.dumps(verdict.details, allow_nan=False)
    except Exception as error:
        logger.exception("gate %s failed on run %s", label, candidate.run_id)
        return GateVerdictRow(
            label, False, f"The gate raised {type(error).__name__}: {error}", {}
        )
    return GateVerdictRow(label, verdict.passed, verdict.reason, dict(verdict.details))


def _read_result(paths: RunPaths) -> dict[str, Any]:
    try:
        return json.loads(paths.result.read_text())
    except FileNotFoundError:
        raise RegistrationError(
            f"The worker exited with status 0 but wrote no {paths.result.name}."
        ) from None
    except (OSError, ValueError) as error:
        raise RegistrationError(f"{paths.result} cannot be read: {error}") from error


def _verify(paths: RunPaths, result: dict[str, Any]):
    try:
        manifest = verify_manifest(paths.artifact_dir)
    except ArtifactError as error:
        raise RegistrationError(f"The artifact failed verification: {error}") from error
    weights = result.get("weights_file")
    if weights not in manifest.files:
        raise RegistrationError(
            f"The manifest in {paths.artifact_dir} does not list the weights file "
            f"{weights!r}."
        )
    if manifest.sha256(weights) != result.get("artifact_sha256"):
        raise RegistrationError(
            f"{Path(paths.artifact_dir) / weights} does not match the sha256 in the "
            "result."
        )
    return manifest
