"""Fixtures for console tests: UTC times, and the fake plugins for real agents."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(autouse=True)
def utc_time() -> Iterator[None]:
    """Show times in UTC, so snapshots do not depend on the machine's zone."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if previous is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = previous
    time.tzset()


@pytest.fixture
def plugin_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Make the fake plugins visible to agent subprocesses; return their environment.

    ``rigdeck-agent token create`` validates agent.toml too, so PYTHONPATH is
    set for this whole test, not only for the agent process.
    """
    from tests.plugins import plugin_site

    site = plugin_site.write_site(tmp_path / "plugin-site")
    python_path = plugin_site.python_path(site)
    monkeypatch.setenv("PYTHONPATH", python_path)
    return {"PYTHONPATH": python_path}
