"""Releases: approvals, the state machine, canary analysis and rollback."""

from agent.releases.controller import CONTROLLER_ACTOR, ReleaseController
from agent.releases.errors import (
    InvalidTransition,
    NotReleasable,
    ReleaseConflict,
    ReleaseError,
    ReleaseNotFound,
    SelfApproval,
)
from agent.releases.service import ReleaseService

__all__ = [
    "CONTROLLER_ACTOR",
    "InvalidTransition",
    "NotReleasable",
    "ReleaseConflict",
    "ReleaseController",
    "ReleaseError",
    "ReleaseNotFound",
    "ReleaseService",
    "SelfApproval",
]
