"""Exceptions raised by training: placement, triggers and cancels.

TrainingError (an AgentError)
 ├── PlacementRefused    the run needs GPUs and none may take work now
 ├── RunConflict         the model already has an active run
 └── RunNotActive        a cancel of a run that has finished
"""

from __future__ import annotations

from agent.errors import AgentError


class TrainingError(AgentError):
    """Base class of the training errors."""


class PlacementRefused(TrainingError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class RunConflict(TrainingError):
    def __init__(self, model: str, run_id: int, state: str) -> None:
        super().__init__(
            f"Model {model!r} already has run {run_id} {state}; wait for it to finish "
            f"or cancel it (POST /api/v1/runs/{run_id}/cancel)."
        )
        self.model = model
        self.run_id = run_id
        self.state = state


class RunNotActive(TrainingError):
    def __init__(self, run_id: int, state: str) -> None:
        super().__init__(
            f"Run {run_id} has already finished ({state}); there is nothing to cancel."
        )
        self.run_id = run_id
        self.state = state
