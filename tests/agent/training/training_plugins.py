"""Fake plugins for the run manager's tests, registered like ``fake_plugins``.

``write_dist_info`` adds a second dist-info to the fake-plugin site, so the
agent finds these through entry points. Import this module as
``tests.agent.training.training_plugins`` (the name in the entry points),
never as ``training_plugins``: two import names would give two copies of
the events below.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from plugins import Gate, GateVerdict, Recipe, TrainingJob, TrainingResult

MODULE = "tests.agent.training.training_plugins"

ENTRY_POINTS = {
    "gate.blocking": f"{MODULE}:BlockingGate",
    "recipe.nested-non-finite": f"{MODULE}:NestedNonFiniteRecipe",
    "recipe.escaping-child": f"{MODULE}:EscapingChildRecipe",
}

# The blocking gate runs in the agent process (the test process), so a
# test controls it with these events.
gate_entered = threading.Event()
gate_release = threading.Event()


def write_dist_info(site: Path) -> None:
    """Write ``rigdeck_training_test_plugins-0.0.0.dist-info`` into ``site``."""
    info = site / "rigdeck_training_test_plugins-0.0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: rigdeck-training-test-plugins\nVersion: 0.0.0\n"
    )
    lines = "".join(f"{name} = {value}\n" for name, value in ENTRY_POINTS.items())
    (info / "entry_points.txt").write_text(f"[rigdeck.plugins]\n{lines}")


class BlockingGate(Gate):
    """Passes, but only after the test sets ``gate_release``."""

    name = "blocking"

    def evaluate(self, candidate, context) -> GateVerdict:
        gate_entered.set()
        if not gate_release.wait(timeout=120):
            raise TimeoutError("the test never released the blocking gate")
        return GateVerdict(passed=True, reason="released by the test")


class NestedNonFiniteRecipe(Recipe):
    """Reports NaN and infinity inside nested progress and metric values."""

    name = "nested-non-finite"

    def train(self, job: TrainingJob) -> TrainingResult:
        nan, inf = float("nan"), float("inf")
        job.progress(epoch=1, losses={"train": nan, "parts": [1.5, inf, (-inf, 2)]})
        job.metric("per_class", {"a": nan, "b": 0.5})
        job.write_artifact("weights.bin", b"\x00" * 64)
        return TrainingResult(metrics={"accuracy": 1.0}, weights_file="weights.bin")


class EscapingChildRecipe(Recipe):
    """Starts a child in a new session, reports its pid, then waits to be ended."""

    name = "escaping-child"

    def train(self, job: TrainingJob) -> TrainingResult:
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)"],
            start_new_session=True,
        )
        job.progress(child_pid=child.pid, child_pgid=os.getpgid(child.pid))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.05)
        raise TimeoutError("the escaping-child recipe was never cancelled")
