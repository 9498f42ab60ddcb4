"""The state every part of a running agent shares: config, store, services."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.config import AgentConfig
from store import Store

if TYPE_CHECKING:
    from agent.drift import DriftService
    from agent.releases import ReleaseService
    from agent.serving import ServingService
    from agent.telemetry import Sampler
    from agent.training.service import TrainingService


@dataclass
class AgentContext:
    config: AgentConfig
    store: Store
    sampler: Sampler | None = None
    training: TrainingService | None = None
    serving: ServingService | None = None
    releases: ReleaseService | None = None
    drift: DriftService | None = None
    started_at: float = field(default_factory=time.time)
    services: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.agent.name
