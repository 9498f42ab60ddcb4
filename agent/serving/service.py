"""The serving service the daemon starts: worker supervisor and prediction feed."""

from __future__ import annotations

from agent.config import AgentConfig
from agent.serving.feed import PredictionFeed
from agent.serving.supervisor import WorkerSupervisor
from store import Store


class ServingService:
    """Runs in the control process; the worker itself is a separate process."""

    def __init__(self, store: Store, config: AgentConfig) -> None:
        self.supervisor = WorkerSupervisor(store, config)
        self.feed = PredictionFeed(store)

    def start(self) -> None:
        self.supervisor.start()
        self.feed.start()

    def stop(self) -> None:
        self.feed.stop()
        self.supervisor.stop()

    def deployment_changed(self, model: str) -> None:
        """Start the worker if this is the first deployment; it follows the rest."""
        self.supervisor.wake()
