"""Thread rules of Textual, checked on the console's source.

No thread workers (they would touch widgets from another thread) and no
``call_from_thread`` (it deadlocks when called on the app's own thread):
all agent I/O runs in async workers and reports back with messages.
"""

from __future__ import annotations

import ast
from pathlib import Path

CONSOLE = Path(__file__).resolve().parents[2] / "console"


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def test_console_avoids_thread_workers():
    problems = []
    for path in sorted(CONSOLE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for call in _calls(tree):
            name = _name(call.func)
            if name == "call_from_thread":
                problems.append(f"{path.name}:{call.lineno} calls call_from_thread")
            if name in ("work", "run_worker"):
                for keyword in call.keywords:
                    if keyword.arg == "thread" and not (
                        isinstance(keyword.value, ast.Constant)
                        and keyword.value.value is False
                    ):
                        problems.append(
                            f"{path.name}:{call.lineno} starts a thread worker"
                        )
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = getattr(node, "module", "") or ""
                names = [alias.name for alias in node.names]
                if "threading" in names or module == "threading":
                    problems.append(f"{path.name}:{node.lineno} imports threading")

    assert problems == []


def test_check_finds_a_thread_worker(tmp_path: Path):
    # The check must be able to fail.
    tree = ast.parse(
        "@work(thread=True)\ndef f(): pass\nself.app.call_from_thread(f)\n"
    )

    names = [_name(call.func) for call in _calls(tree)]

    assert "call_from_thread" in names
    assert any(
        keyword.arg == "thread" for call in _calls(tree) for keyword in call.keywords
    )
