"""Import boundaries, checked in fresh interpreters and on a running agent.

The console must start fast on a laptop without the agent's dependencies.
The store must stay importable by every part of the system. The agent's
control process must not load torch, which belongs in training runs and
the serving worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import REPO, RunningAgent

HEAVY_PACKAGES = ("torch", "river", "fastapi", "apscheduler", "uvicorn")

# Import every module of PACKAGE, then print the top-level names in sys.modules.
IMPORT_ALL = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(module.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def _top_level_modules_after_importing(package: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, package],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def test_console_imports_no_agent_dependencies() -> None:
    loaded = _top_level_modules_after_importing("console")

    assert "console" in loaded
    assert "textual" in loaded
    for package in (*HEAVY_PACKAGES, "agent", "plugins"):
        assert package not in loaded, f"importing the console loaded {package}"


def test_console_cli_and_app_import_no_heavy_package() -> None:
    # The entry point of `rigdeck`, imported the way the script does it.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, console.cli, console.app; "
            "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))

    for package in HEAVY_PACKAGES:
        assert package not in loaded, f"console.cli or console.app loaded {package}"


def test_store_imports_nothing_of_ours() -> None:
    loaded = _top_level_modules_after_importing("store")

    assert "sqlite_utils" in loaded
    for package in ("agent", "console", "plugins", *HEAVY_PACKAGES):
        assert package not in loaded, f"importing the store loaded {package}"


def _mapped_files(pid: int) -> set[str]:
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {
        line.split(maxsplit=5)[5] for line in lines if len(line.split(maxsplit=5)) == 6
    }


def _maps_torch(pid: int) -> bool:
    return any("/torch/" in path for path in _mapped_files(pid))


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_running_agent_never_loads_torch(
    agent_factory: Callable[..., RunningAgent],
) -> None:
    agent = agent_factory()
    with agent.client("viewer") as client:
        host = client.get("/api/v1/host")

    mapped = _mapped_files(agent.process.pid)

    assert host.status_code == 200
    assert any("_sqlite3" in path for path in mapped)
    assert not _maps_torch(agent.process.pid)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_torch_check_sees_torch_when_loaded() -> None:
    # The check above must be able to fail: a process that imports torch
    # maps its shared libraries.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, torch; print('ready', flush=True); sys.stdin.read()",
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "ready\n"
        assert _maps_torch(holder.pid)
    finally:
        holder.stdin.close()
        holder.wait(30)
        holder.stdout.close()


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")

    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
