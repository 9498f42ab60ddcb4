"""The training service the daemon starts: recovery, run supervisor, scheduler."""

from __future__ import annotations

import logging
from typing import Any

from agent.config import AgentConfig
from agent.training.manager import RunManager
from agent.training.placement import GpuInventory, NoGpus
from agent.training.recovery import recover
from agent.training.scheduler import TrainingScheduler, trigger_description
from store import Store
from store import jobs as job_rows

logger = logging.getLogger(__name__)


class TrainingService:
    """Starts in order: recovery, model and job rows, run supervisor, scheduler."""

    def __init__(
        self, store: Store, config: AgentConfig, inventory: GpuInventory | None
    ) -> None:
        self.store = store
        self.config = config
        self.runs = RunManager(store, config, inventory)
        self.scheduler = TrainingScheduler(store, config, self.runs)

    def start(self) -> None:
        recover(self.store, self.config)
        sync_models(self.store, self.config)
        self.runs.start()
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        self.runs.stop()


def sync_models(store: Store, config: AgentConfig) -> None:
    """Create or update the model and job rows of every configured model.

    Models removed from agent.toml keep their rows, runs and versions.
    """
    with store.write() as db:
        for model in config.models:
            job_rows.upsert_model(db, model.name, model.model_dump(mode="json"))
            job_rows.upsert_job(
                db, model.name, model.name, trigger_description(model.schedule)
            )


def gpu_inventory(sampler: Any) -> GpuInventory:
    """Return the sampler's GPU probe, or an inventory that places no GPU run."""
    probe = getattr(sampler, "gpu", None)
    if callable(getattr(probe, "placeable_gpus", None)) and callable(
        getattr(probe, "refusal_reason", None)
    ):
        return probe
    return NoGpus()
