"""Fixtures for serving tests: real worker processes on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from serving_helpers import FAST_SERVING, Worker, agent_config, start_worker

from agent.config import AgentConfig
from store import Store


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Build a store, let the test fill it, then start workers on it."""
    started: list[Worker] = []

    def factory(
        prepare: Callable[[Store, AgentConfig], Any] = lambda store, config: None,
        serving: str = FAST_SERVING,
        directory: Path | None = None,
    ) -> Worker:
        config = agent_config(directory or tmp_path / f"agent{len(started)}", serving)
        store = Store(config.store_path)
        prepare(store, config)
        worker = start_worker(config, store)
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        worker.stop()
        worker.store.close()
