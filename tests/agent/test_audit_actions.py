"""Every audit action the agent can write is listed in docs/security.md."""

from __future__ import annotations

import ast
import re

from harness import REPO

from store.releases import ReleaseAction

SOURCE_DIRS = ("agent", "plugins")
SECURITY_DOC = REPO / "docs" / "security.md"
# The functions that write an audit entry, and the position of their
# action among the positional arguments when it is not passed by keyword.
AUDIT_WRITERS = {"append_entry": None, "_audit": 2}


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    if isinstance(call.func, ast.Name):
        return call.func.id
    return None


def _action_argument(call: ast.Call, position: int | None) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "action":
            return keyword.value
    if position is not None and len(call.args) > position:
        return call.args[position]
    return None


def _action_names(node: ast.expr, where: str) -> set[str]:
    """Return the actions an argument can take; a Name forwards its caller's."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Name):
        return set()
    # The release controller writes f"release.{action}" for each
    # ReleaseAction. Any other computed action needs a case here.
    prefix = node.values[0] if isinstance(node, ast.JoinedStr) else None
    if isinstance(prefix, ast.Constant) and prefix.value == "release.":
        return {f"release.{action}" for action in ReleaseAction}
    raise AssertionError(
        f"{where}: cannot list the audit actions of {ast.unparse(node)}"
    )


def code_actions() -> set[str]:
    actions: set[str] = set()
    for directory in SOURCE_DIRS:
        for path in sorted((REPO / directory).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = _called_name(node)
                if name not in AUDIT_WRITERS:
                    continue
                argument = _action_argument(node, AUDIT_WRITERS[name])
                if argument is None:
                    continue
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                actions |= _action_names(argument, where)
    return actions


def documented_actions() -> set[str]:
    text = SECURITY_DOC.read_text()
    section = text.split("## The audit chain", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", section, re.MULTILINE))


def test_code_actions_are_found() -> None:
    actions = code_actions()

    assert "token.create" in actions
    assert "release.approval" in actions
    assert "release.approve" in actions
    assert "deployment.rollback" in actions


def test_every_action_is_documented() -> None:
    missing = code_actions() - documented_actions()

    assert missing == set(), f"add these to the audit table of {SECURITY_DOC}"


def test_every_documented_action_is_written() -> None:
    stale = documented_actions() - code_actions()

    assert stale == set(), f"the code writes none of these; update {SECURITY_DOC}"
