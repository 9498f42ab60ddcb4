"""Fixtures for training tests: the fake plugins, and run managers in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from training_helpers import Harness, write_agent_config

from agent.config import load_config
from agent.training.manager import RunManager
from agent.training.service import sync_models
from store import Store


@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the fake plugins discoverable here and in subprocesses; return the site."""
    # Imported here: training_helpers puts the repository root on sys.path.
    from tests.agent.training import training_plugins
    from tests.plugins import plugin_site

    site = plugin_site.write_site(tmp_path / "plugin-site")
    training_plugins.write_dist_info(site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", plugin_site.python_path(site))
    return site


@pytest.fixture
def harness(tmp_path: Path, fake_plugins: Path) -> Iterator[Callable[..., Harness]]:
    """Build configs, stores and started run managers; stop them all at teardown."""
    built: list[Harness] = []

    def factory(
        body: str,
        training: str = "cancel_grace_seconds = 2.0",
        start: bool = True,
        inventory=None,
    ) -> Harness:
        config = load_config(
            write_agent_config(tmp_path / f"agent{len(built)}", body, training)
        )
        config.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store(config.store_path)
        sync_models(store, config)
        runs = RunManager(store, config, inventory, poll_seconds=0.02)
        if start:
            runs.start()
        built.append(Harness(config, store, runs))
        return built[-1]

    yield factory
    for item in built:
        item.runs.stop()
        item.store.close()
