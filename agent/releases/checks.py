"""Checks the release controller makes before it changes anything.

Each raises an ``agent.releases.errors`` exception whose message names
the model, version or release and the next step.
"""

from __future__ import annotations

from typing import Any

from agent.releases.errors import (
    InvalidTransition,
    NotReleasable,
    ReleaseConflict,
    ReleaseNotFound,
)
from store import NotFoundError, Store, audit
from store import deployments as deployment_rows
from store import releases as release_rows
from store import versions as version_rows
from store.artifacts import ArtifactError, verify_manifest
from store.releases import InvalidReleaseTransition, ReleaseAction


def get_release(db: Any, release_id: int) -> dict[str, Any]:
    try:
        return release_rows.get_release(db, release_id)
    except NotFoundError:
        raise ReleaseNotFound(
            f"No release with id {release_id}; see GET /api/v1/releases."
        ) from None


def check_action(release: dict[str, Any], action: ReleaseAction) -> None:
    try:
        release_rows.target_state(release["id"], release["state"], action)
    except InvalidReleaseTransition as error:
        raise InvalidTransition(str(error)) from None


def check_model(db: Any, model: str) -> None:
    row = db.conn.execute("SELECT 1 FROM models WHERE name = ?", (model,)).fetchone()
    if row is None:
        raise ReleaseNotFound(f"No model named {model!r}; see GET /api/v1/models.")


def releasable_version(db: Any, model: str, number: int) -> dict[str, Any]:
    check_model(db, model)
    version = version_rows.find_version(db, model, number)
    if version is None:
        raise ReleaseNotFound(
            f"Model {model!r} has no version {number}; see "
            f"GET /api/v1/models/{model}/versions."
        )
    ok, reason = version_rows.releasable(version)
    if not ok:
        raise NotReleasable(
            f"Version {number} of {model!r} cannot be released: {reason}"
        )
    if version["load_error"]:
        raise NotReleasable(
            f"Version {number} of {model!r} cannot be released because it failed "
            f"to load: {version['load_error']}"
        )
    return version


def verify_artifact(store: Store, actor: str, version: dict[str, Any]) -> None:
    """Check the artifact against its manifest before anyone approves it."""
    try:
        verify_manifest(version["artifact_path"])
    except ArtifactError as error:
        message = f"The artifact failed verification: {error}"
        with store.write() as db:
            deployment_rows.mark_load_error(
                db, version["model"], version["number"], message
            )
            audit.append_entry(
                db,
                actor=actor,
                action="version.load_failed",
                target=f"model/{version['model']}/version/{version['number']}",
                reason=message,
                after={"load_error": message},
            )
        raise NotReleasable(
            f"Version {version['number']} of {version['model']!r} cannot be "
            f"released. {message}"
        ) from None


def check_no_open_release(db: Any, model: str, version: int) -> None:
    stable = version_rows.stable_version(db, model)
    if stable == version:
        raise ReleaseConflict(f"Version {version} of {model!r} is already stable.")
    open_release = release_rows.open_release(db, model)
    if open_release is not None:
        raise ReleaseConflict(
            f"Model {model!r} has release {open_release['id']} (version "
            f"{open_release['version']}) {open_release['state']}; finish, reject "
            "or abort it before requesting another."
        )


def check_rollback_target(
    db: Any, model: str, before: dict[str, Any] | None, target: int | None
) -> None:
    if before is None or before["stable_version"] is None:
        raise ReleaseConflict(
            f"Model {model!r} serves nothing, so there is no rollback."
        )
    if target is None:
        raise ReleaseConflict(
            f"Model {model!r} has no earlier stable version to roll back to: "
            f"version {before['stable_version']} is the first, or every earlier "
            "one was rolled back. To end a canary, abort its release instead."
        )
    version = version_rows.find_version(db, model, target)
    if version is not None and version["load_error"]:
        raise ReleaseConflict(
            f"The last known-good version {target} of {model!r} cannot serve: "
            f"{version['load_error']}"
        )
