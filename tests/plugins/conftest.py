"""Fixtures for plugin tests: the fake third-party plugins, installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The fake plugins are imported as ``tests.plugins.fake_plugins``, so the
# repository root must be importable whether pytest runs as ``pytest`` or
# ``python -m pytest``.
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.plugins import plugin_site  # noqa: E402


@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the fake plugins discoverable here and in subprocesses; return the site."""
    site = plugin_site.write_site(tmp_path / "plugin-site")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", plugin_site.python_path(site))
    return site
