"""Exceptions the release controller raises; the API maps each to a status.

ReleaseError
 ├── ReleaseNotFound        no such release, model or version       (404)
 ├── ReleaseConflict        the request contradicts the current state (409)
 │    ├── NotReleasable     the version's gates failed or are pending
 │    └── InvalidTransition the state machine forbids the action
 └── SelfApproval           the requester tried to approve          (403)
"""

from __future__ import annotations


class ReleaseError(Exception):
    """Base class of every error the release controller raises on purpose."""

    status = 400
    code = "release_error"


class ReleaseNotFound(ReleaseError):
    status = 404
    code = "not_found"


class ReleaseConflict(ReleaseError):
    status = 409
    code = "conflict"


class NotReleasable(ReleaseConflict):
    code = "not_releasable"


class InvalidTransition(ReleaseConflict):
    code = "invalid_transition"


class SelfApproval(ReleaseError):
    status = 403
    code = "self_approval"
