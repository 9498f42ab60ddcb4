"""GPU placement against a fake inventory: free, healthy GPUs, or a refusal."""

from __future__ import annotations

from typing import NamedTuple

from agent.training.placement import NoGpus, choose_gpus, refusal, unhealthy
from agent.training.service import gpu_inventory


class Refusal(NamedTuple):
    reason: str
    message: str


class FakeInventory:
    def __init__(self, healthy: list[int], reason: Refusal | None = None) -> None:
        self.healthy = healthy
        self.reason = reason

    def placeable_gpus(self) -> list[int]:
        return list(self.healthy)

    def refusal_reason(self) -> Refusal | None:
        return self.reason


def test_cpu_run_is_never_refused():
    assert refusal(NoGpus(), 0) is None
    assert choose_gpus(NoGpus(), 0, busy=[]) == []


def test_driver_mismatch_refuses_gpu_runs():
    inventory = FakeInventory(
        [0, 1],
        Refusal("driver_mismatch", "Driver/library version mismatch; reboot required."),
    )
    refused = refusal(inventory, 1)
    assert refused.reason == "driver_mismatch"
    assert (
        refused.message
        == "No GPU run may start on this host: Driver/library version mismatch; "
        "reboot required."
    )


def test_lost_gpu_is_never_chosen():
    inventory = FakeInventory([0, 1, 3])
    assert choose_gpus(inventory, 3, busy=[]) == [0, 1, 3]
    assert choose_gpus(inventory, 2, busy=[0]) == [1, 3]
    assert choose_gpus(inventory, 2, busy=[0, 1]) is None


def test_too_few_healthy_gpus_is_refused():
    refused = refusal(FakeInventory([0, 1, 3]), 4)
    assert refused.reason == "not_enough_gpus"
    assert refused.message == "The run needs 4 GPUs; this host has 3 healthy (0, 1, 3)."


def test_unhealthy_lists_assigned_gpus_no_longer_placeable():
    assert unhealthy(FakeInventory([0, 1, 3]), [2, 3]) == [2]
    assert unhealthy(FakeInventory([0, 1, 2, 3]), [2, 3]) == []


def test_no_telemetry_refuses_with_reason():
    refused = refusal(NoGpus(), 1)
    assert refused.reason == "gpu_telemetry_unavailable"
    assert "no GPU telemetry" in refused.message


def test_sampler_probe_is_used_when_present():
    class Sampler:
        gpu = FakeInventory([0])

    assert gpu_inventory(Sampler()) is Sampler.gpu
    assert isinstance(gpu_inventory(None), NoGpus)
