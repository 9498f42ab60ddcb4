"""Third-party-style plugins for tests, registered through a dist-info directory.

``plugin_site.write_site`` writes the entry points, so the agent discovers
these the same way it discovers an installed package's plugins. None of
them imports torch, so runs that use them start in well under a second.
"""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from plugins import (
    Dataset,
    Gate,
    GateVerdict,
    PluginConfigError,
    Recipe,
    TrainingJob,
    TrainingResult,
)


class ExplodingRecipe(Recipe):
    """Reports one epoch, then raises ValueError."""

    name = "explode"

    def train(self, job: TrainingJob) -> TrainingResult:
        job.progress(epoch=1, step=10, loss=0.5)
        raise ValueError("the fake recipe exploded after epoch 1")


class MemoryHogRecipe(Recipe):
    """Allocates 32 MiB blocks until MemoryError; only under an address-space limit."""

    name = "memory-hog"

    def train(self, job: TrainingJob) -> TrainingResult:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            raise RuntimeError(
                "memory-hog refuses to run without resources.memory_limit_bytes"
            )
        blocks = []
        while True:
            blocks.append(bytearray(32 * 1024 * 1024))


class SlowRecipe(Recipe):
    """Reports progress every 50 ms for ``seconds``; may ignore SIGTERM."""

    name = "slow"

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(params) - {"seconds", "ignore_sigterm"}
        if unknown:
            raise PluginConfigError(f"slow: unknown parameter {sorted(unknown)[0]!r}")
        return {"seconds": 60.0, "ignore_sigterm": False, **params}

    def train(self, job: TrainingJob) -> TrainingResult:
        if job.params["ignore_sigterm"]:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        deadline = time.monotonic() + job.params["seconds"]
        step = 0
        while time.monotonic() < deadline:
            step += 1
            job.progress(epoch=1, step=step, loss=1.0 / step)
            time.sleep(0.05)
        return _fixed_result(job, {"accuracy": 1.0})


class FixedMetricsRecipe(Recipe):
    """Writes a small weights file and returns ``params["metrics"]`` unchanged."""

    name = "fixed-metrics"

    def train(self, job: TrainingJob) -> TrainingResult:
        job.progress(epoch=1, step=1, loss=0.1)
        return _fixed_result(job, dict(job.params.get("metrics", {})))


class EnvironmentRecipe(Recipe):
    """Reports the worker's CUDA_VISIBLE_DEVICES and device as progress."""

    name = "environment"

    def train(self, job: TrainingJob) -> TrainingResult:
        job.progress(
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
            device=job.device,
        )
        return _fixed_result(job, {"accuracy": 1.0})


class ForgetfulRecipe(Recipe):
    """Returns a weights file it never wrote."""

    name = "forgetful"

    def train(self, job: TrainingJob) -> TrainingResult:
        return TrainingResult(metrics={}, weights_file="missing.pt")


class NotARecipe:
    """Registered as a recipe but not a subclass of plugins.Recipe."""


class RaisingGate(Gate):
    name = "explode"

    def evaluate(self, candidate, context) -> GateVerdict:
        raise RuntimeError("the fake gate exploded")


class CountingDataset(Dataset):
    """``rows`` rows with features x1, x2 and a target y alternating 0 and 1."""

    name = "counting"

    @classmethod
    def validate_options(
        cls, options: Mapping[str, Any], *, base_dir: Path
    ) -> dict[str, Any]:
        return {"rows": 20, **options}

    def default_target(self) -> str:
        return "y"

    def rows(self) -> Iterator[Mapping[str, Any]]:
        for index in range(self.options["rows"]):
            yield {"x1": index, "x2": index % 3, "y": index % 2}


def _fixed_result(job: TrainingJob, metrics: dict[str, Any]) -> TrainingResult:
    job.write_artifact("weights.bin", b"\x00" * 64)
    return TrainingResult(metrics=metrics, weights_file="weights.bin")
