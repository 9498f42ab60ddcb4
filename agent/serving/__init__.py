"""Serving in the control process: the worker's supervisor and the prediction feed.

The worker process itself lives in ``agent.serving.worker`` and is never
imported here, because it loads torch.
"""

from agent.serving.feed import PredictionFeed
from agent.serving.service import ServingService
from agent.serving.supervisor import WorkerState, WorkerSupervisor

__all__ = ["PredictionFeed", "ServingService", "WorkerState", "WorkerSupervisor"]
