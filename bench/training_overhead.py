"""Overhead of training through the agent against running the recipe directly.

Both sides train tabular-mlp on river's full Shuttle data set with the
same parameters, each in a fresh Python process:

- direct: ``python bench/training_overhead.py --direct`` loads the rows
  through the dataset plugin, calls the recipe and writes the artifact.
  Its wall time runs from process start to exit.
- agent: a real ``rigdeck-agent run`` on a temporary data directory. The
  wall time runs from ``POST /api/v1/jobs/shuttle/trigger`` until
  ``GET /api/v1/runs/{id}`` (polled every 20 ms) shows ``succeeded``. It
  includes queueing, the worker process, hashing, reference statistics,
  the manifest, registration and gates.

The two are interleaved, ``--repeat`` times each, and the medians are
compared. Exits 1 when the agent's median exceeds the direct median by
more than 5 %.

    python bench/training_overhead.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import Figure, report

REPO = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.05
POLL_SECONDS = 0.02
PARAMS = {"max_epochs": 30, "seed": 0}

CONFIG = """
[agent]
name = "bench"
region = "eu"
data_dir = "data"

[api]
port = 0

[telemetry]
nvml = false

[[models]]
name = "shuttle"
[models.dataset]
plugin = "river"
options = {{ name = "Shuttle" }}
[models.recipe]
plugin = "tabular-mlp"
params = {params}
[models.resources]
budget_seconds = 600
"""


def train_directly(artifact_dir: Path) -> dict:
    """Train as the worker would, without the agent: plugin rows, recipe, artifact."""
    import plugins
    from agent.training.data import load_tabular

    dataset_class = plugins.load("dataset", "river")
    dataset = dataset_class(
        dataset_class.validate_options({"name": "Shuttle"}, base_dir=REPO)
    )
    data = load_tabular(dataset, features=None, target="anomaly", sensitive=None)
    recipe_class = plugins.load("recipe", "tabular-mlp")

    class Discard:
        def progress(self, **values) -> None:
            pass

        def metric(self, name: str, value: float) -> None:
            pass

    job = plugins.TrainingJob(
        run_id=0,
        model="shuttle",
        data=data,
        params=recipe_class.validate_params(PARAMS),
        device="cpu",
        artifact_dir=artifact_dir,
        reporter=Discard(),
    )
    return recipe_class().train(job).metrics


def time_direct(workdir: Path) -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, __file__, "--direct", str(workdir / "direct-artifact")],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


class Agent:
    """A real agent process on a temporary data directory, with an operator token."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.config = workdir / "agent.toml"
        self.config.write_text(CONFIG.format(params=_toml_inline(PARAMS)))
        self.token = self._cli("token", "create", "bench", "--role", "operator").strip()
        self.log = (workdir / "agent.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(self.config)],
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = self._wait_for_url()

    def _cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "agent.cli", *args, "--config", str(self.config)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def _wait_for_url(self) -> str:
        import httpx

        runtime = self.workdir / "data" / "agent.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the agent exited; see {self.workdir / 'agent.log'}"
                )
            if runtime.exists():
                url = json.loads(runtime.read_text())["url"]
                try:
                    if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                        return url
                except httpx.HTTPError:
                    pass
            time.sleep(POLL_SECONDS)
        raise RuntimeError("the agent did not respond within 60 s")

    def time_run(self) -> tuple[float, dict]:
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
            started = time.monotonic()
            run_id = (
                client.post("/api/v1/jobs/shuttle/trigger")
                .raise_for_status()
                .json()["id"]
            )
            while True:
                run = client.get(f"/api/v1/runs/{run_id}").json()
                if run["state"] not in ("queued", "running"):
                    break
                time.sleep(POLL_SECONDS)
            elapsed = time.monotonic() - started
        if run["state"] != "succeeded":
            raise RuntimeError(f"run {run_id} ended {run['state']}: {run['error']}")
        return elapsed, run["metrics"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def _toml_inline(values: dict) -> str:
    return "{ " + ", ".join(f"{key} = {value}" for key, value in values.items()) + " }"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=3, help="Runs of each kind (default 3)."
    )
    parser.add_argument("--direct", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, not {args.repeat}.")
    if args.direct is not None:
        print(json.dumps(train_directly(args.direct)))
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="rigdeck-bench-"))
    agent = Agent(workdir)
    direct_seconds, agent_seconds = [], []
    try:
        for _ in range(args.repeat):
            direct_seconds.append(time_direct(workdir))
            elapsed, metrics = agent.time_run()
            agent_seconds.append(elapsed)
    finally:
        agent.stop()
    shutil.rmtree(workdir, ignore_errors=True)

    baseline = statistics.median(direct_seconds)
    figure = statistics.median(agent_seconds)
    print(f"tabular-mlp on Shuttle (49,097 rows, {PARAMS}), {os.cpu_count()} CPUs")
    print(f"median of {args.repeat} runs of each kind")
    print(f"direct runs (s): {', '.join(f'{s:.2f}' for s in direct_seconds)}")
    print(f"agent runs (s):  {', '.join(f'{s:.2f}' for s in agent_seconds)}")
    accuracy, recall = metrics["accuracy"], metrics["recall"]
    print(f"held-out accuracy {accuracy:.4f}, anomaly recall {recall:.4f}")
    wall_time = Figure(
        f"wall time through the agent, median of {args.repeat}",
        figure,
        baseline,
        "s",
        f"< {TARGET_RATIO:.2f}x",
        figure / baseline < TARGET_RATIO,
    )
    return report("training_overhead", [wall_time])


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
