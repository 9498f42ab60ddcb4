"""Fixtures for release tests: a store, a config and a controller in this process."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

# The artifact and config helpers are shared with the serving tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from serving_helpers import add_version, agent_config, model_toml  # noqa: E402

from agent.config import AgentConfig  # noqa: E402
from agent.releases import ReleaseController  # noqa: E402
from store import Store  # noqa: E402


@dataclass
class Releases:
    """A controller on a fresh store, with a fake clock the test moves."""

    config: AgentConfig
    store: Store
    controller: ReleaseController
    now: list[float]
    changed: list[str]

    def add_version(self, model: str = "m", **kwargs) -> dict:
        """Register the next version; its weights are seeded by its number."""
        count = self.store.db.conn.execute(
            "SELECT COUNT(*) FROM versions WHERE model = ?", (model,)
        ).fetchone()[0]
        kwargs.setdefault("seed", count + 1)
        return add_version(self.store, self.config.data_dir, model, **kwargs)


@pytest.fixture
def releases(tmp_path: Path) -> Callable[..., Releases]:
    built: list[Releases] = []

    def factory(release: str = "", models: tuple[str, ...] = ("m",)) -> Releases:
        body = "".join(model_toml(name, release) for name in models)
        config = agent_config(tmp_path / f"agent{len(built)}", body)
        store = Store(config.store_path)
        now = [1_000_000.0]
        changed: list[str] = []
        controller = ReleaseController(
            store, config, on_deployment_change=changed.append, clock=lambda: now[0]
        )
        built.append(Releases(config, store, controller, now, changed))
        return built[-1]

    yield factory
    for item in built:
        item.store.close()
