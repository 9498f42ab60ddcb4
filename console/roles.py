"""Token roles and the role each console action needs.

The agent checks every request; the console uses these tables only to show
an action as disabled, with the reason, before the user tries it.
"""

from __future__ import annotations

import re

ROLES = ("viewer", "operator", "approver", "admin")

# The minimum role each state-changing action needs, as the agent enforces it.
ACTION_ROLES = {
    "trigger": "operator",
    "cancel": "operator",
    "acknowledge": "operator",
    "rollback": "operator",
    "request_release": "operator",
    "approve": "approver",
    "reject": "approver",
    "promote": "approver",
    "abort": "approver",
}

# The agent's 403 message names the token and its role, e.g. "... the token
# 'ci' has the viewer role." Used only while the agent has no whoami route.
_FORBIDDEN_PATTERN = re.compile(r"the token '([^']+)' has the (\w+) role")


def role_allows(role: str | None, action: str) -> bool | None:
    """Return whether ``role`` may take ``action``; None when the role is unknown."""
    if role is None or role not in ROLES:
        return None
    needed = ACTION_ROLES[action]
    return ROLES.index(role) >= ROLES.index(needed)


def identity_from_forbidden(message: str) -> tuple[str, str] | None:
    """Return (token name, role) named in an agent's 403 message, if it names them."""
    match = _FORBIDDEN_PATTERN.search(message)
    if match is None or match.group(2) not in ROLES:
        return None
    return match.group(1), match.group(2)
