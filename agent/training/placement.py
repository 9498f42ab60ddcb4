"""GPU placement: which free, healthy GPUs a run may take.

The placement code reads GPU health through ``GpuInventory``, a two-method
protocol that ``agent.telemetry.GpuProbe`` satisfies, so it works with a
fake in tests and with no telemetry at all (then only CPU runs start).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from agent.training.errors import PlacementRefused


class GpuInventory(Protocol):
    def placeable_gpus(self) -> list[int]:
        """Indices of the GPUs that are readable and not lost."""

    def refusal_reason(self) -> Any:
        """Return None when GPU runs may start, else an object with reason, message."""


class NoGpus:
    """The inventory of an agent without GPU telemetry: it places nothing."""

    def __init__(
        self, reason: str = "gpu_telemetry_unavailable", message: str = ""
    ) -> None:
        self.reason = reason
        self.message = (
            message or "This agent has no GPU telemetry, so it places no GPU run."
        )

    def placeable_gpus(self) -> list[int]:
        return []

    def refusal_reason(self) -> NoGpus:
        return self


def refusal(inventory: GpuInventory, gpus_needed: int) -> PlacementRefused | None:
    """Return why a run needing ``gpus_needed`` GPUs can never start now, or None.

    Busy GPUs are not a refusal: the run waits in the queue for them.
    """
    if gpus_needed == 0:
        return None
    reason = inventory.refusal_reason()
    if reason is not None:
        code = getattr(reason, "reason", None) or "gpu_unavailable"
        message = getattr(reason, "message", None) or str(reason)
        return PlacementRefused(code, f"No GPU run may start on this host: {message}")
    healthy = inventory.placeable_gpus()
    if len(healthy) < gpus_needed:
        return PlacementRefused(
            "not_enough_gpus",
            f"The run needs {gpus_needed} GPUs; this host has {len(healthy)} healthy "
            f"({_indices(healthy)}).",
        )
    return None


def choose_gpus(
    inventory: GpuInventory, gpus_needed: int, busy: Iterable[int]
) -> list[int] | None:
    """Pick the lowest-numbered free, healthy GPUs; None when too few are free now."""
    if gpus_needed == 0:
        return []
    busy = set(busy)
    free = [index for index in sorted(inventory.placeable_gpus()) if index not in busy]
    if len(free) < gpus_needed:
        return None
    return free[:gpus_needed]


def unhealthy(inventory: GpuInventory, assigned: Iterable[int]) -> list[int]:
    """Return the assigned GPUs that are no longer placeable (lost, or unreadable)."""
    healthy = set(inventory.placeable_gpus())
    return [index for index in assigned if index not in healthy]


def _indices(indices: list[int]) -> str:
    return ", ".join(str(index) for index in indices) if indices else "none"
