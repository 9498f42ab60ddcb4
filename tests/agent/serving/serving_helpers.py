"""Versions with real tabular-mlp artifacts, registered straight into a store.

Training a version takes seconds. These helpers write the same two files
the recipe writes (``model.pt`` and ``model.json``) from seeded random
weights, seal them with a manifest and insert the version row, in well
under a second.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from harness import wait_for  # noqa: E402

from agent.config import AgentConfig, parse_config  # noqa: E402
from agent.serving.spec import LOG_FILE, RUNTIME_FILE, SPEC_FILE, WorkerSpec  # noqa: E402
from store import Store, versions  # noqa: E402
from store import deployments as deployment_rows  # noqa: E402
from store.artifacts import write_atomic, write_manifest  # noqa: E402
from store.versions import GateVerdictRow  # noqa: E402

FEATURES = ("x1", "x2", "x3")
CLASSES = (0, 1)


def _dataset_csv() -> Path:
    """A small CSV for the models' dataset sections.

    The agent checks at load time that a dataset file exists. These tests
    register versions directly and never train, so one shared file will do.
    """
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="rigdeck-serving-")) / "data.csv"
    lines = ["x1,x2,x3,y"] + [f"{i},{i % 3},{i % 5},{i % 2}" for i in range(20)]
    path.write_text("\n".join(lines) + "\n")
    return path


DATASET_CSV = _dataset_csv()


def model_toml(name: str, release: str = "") -> str:
    """Return a [[models]] entry whose [models.release] section is ``release``."""
    return f"""
[[models]]
name = "{name}"
[models.dataset]
plugin = "csv"
options = {{ path = "{DATASET_CSV}" }}
target = "y"
[models.recipe]
plugin = "tabular-mlp"
[models.release]
{release}
"""


def agent_config(directory: Path, body: str) -> AgentConfig:
    """Parse an agent.toml made of ``body`` with its data directory in ``directory``."""
    import tomllib

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "agent.toml"
    path.write_text(f'[agent]\nname = "serving-test"\ndata_dir = "data"\n{body}')
    config = parse_config(tomllib.loads(path.read_text()), path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return config


def write_artifact(
    directory: Path,
    *,
    seed: int,
    features: tuple[str, ...] = FEATURES,
    classes: tuple[Any, ...] = CLASSES,
    nan_weights: bool = False,
) -> str:
    """Write a sealed tabular-mlp artifact; return the weights file's sha256."""
    import torch

    from plugins.recipes.tabular_mlp import build_network

    torch.manual_seed(seed)
    network = build_network(len(features), [8], len(classes), "relu", 0.0)
    state = {key: value.detach().clone() for key, value in network.state_dict().items()}
    if nan_weights:
        state["0.weight"].fill_(float("nan"))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    weights = write_atomic(directory / "model.pt", buffer.getvalue())
    metadata = {
        "format": 1,
        "recipe": "tabular-mlp",
        "feature_names": list(features),
        "target_name": "y",
        "classes": list(classes),
        "positive_class": None,
        "layer_sizes": [len(features), 8, len(classes)],
        "activation": "relu",
        "dropout": 0.0,
        "standardise": {"mean": [0.0] * len(features), "std": [1.0] * len(features)},
        "params": {},
        "torch_version": torch.__version__,
    }
    write_atomic(directory / "model.json", json.dumps(metadata).encode())
    write_manifest(directory, ["model.pt", "model.json"])
    return weights.sha256


def add_version(
    store: Store,
    data_dir: Path,
    model: str,
    *,
    seed: int,
    gates_pass: bool = True,
    **artifact: Any,
) -> dict[str, Any]:
    """Register the next version of ``model`` with an artifact from ``seed``."""
    with store.write() as db:
        # Leaves the configuration of a model the agent already synced alone.
        db.conn.execute(
            "INSERT INTO models (name, created_at) VALUES (?, 0) "
            "ON CONFLICT (name) DO NOTHING",
            (model,),
        )
        number = (
            1
            + db.conn.execute(
                "SELECT COALESCE(MAX(number), 0) FROM versions WHERE model = ?",
                (model,),
            ).fetchone()[0]
        )
    directory = data_dir / "artifacts" / model / f"test-{number}"
    sha256 = write_artifact(directory, seed=seed, **artifact)
    verdict = GateVerdictRow(
        "metric-threshold(accuracy)",
        gates_pass,
        "accuracy passes." if gates_pass else "accuracy is below the minimum.",
        {},
    )
    with store.write() as db:
        return versions.insert_version(
            db,
            model=model,
            run_id=None,
            artifact_path=str(directory),
            artifact_sha256=sha256,
            metrics={"accuracy": 0.9},
            lineage={"recipe": {"plugin": "tabular-mlp", "params": {}}},
            reference={},
            verdicts=[verdict],
        )


def deploy(
    store: Store,
    model: str,
    stable: int,
    canary: int | None = None,
    weight: float = 0.0,
) -> None:
    """Write a deployment the way the release controller does, without a release."""
    with store.write() as db:
        deployment_rows.promote(
            db, model, stable, release_id=None, actor="test", reason="test setup"
        )
        if canary is not None:
            db.conn.execute(
                "UPDATE deployments SET canary_version = ?, canary_weight = ? "
                "WHERE model = ?",
                (canary, weight, model),
            )


def expected_probabilities(version: dict[str, Any], rows: list[list[float]]):
    """Compute the probabilities ``version`` returns for ``rows``, in this process."""
    from plugins.recipes.tabular_mlp import load_model

    model = load_model(version["artifact_path"], version["artifact_sha256"])
    return model.predict_proba(rows)


# Fast polling and flushing, so tests wait milliseconds, not seconds.
FAST_SERVING = """
[serving]
port = 0
poll_seconds = 0.02
log_flush_seconds = 0.05
analysis_interval_seconds = 0.2
restart_backoff_seconds = 0.05
"""


@dataclass
class Worker:
    """A ``python -m agent.serving.worker`` process and its store."""

    config: AgentConfig
    store: Store
    process: subprocess.Popen
    url: str = ""
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        self.clients.append(client)
        return client

    def log(self) -> str:
        path = self.config.data_dir / "serving" / LOG_FILE
        return path.read_text() if path.exists() else ""

    def stop(self) -> int:
        for client in self.clients:
            client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        return self.process.returncode


def start_worker(config: AgentConfig, store: Store) -> Worker:
    """Start a worker on ``config`` and wait until its runtime file names it."""
    directory = config.data_dir / "serving"
    directory.mkdir(parents=True, exist_ok=True)
    spec_path = directory / SPEC_FILE
    WorkerSpec.from_config(config).write(spec_path)
    runtime = config.data_dir / RUNTIME_FILE
    runtime.unlink(missing_ok=True)
    with (directory / LOG_FILE).open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent.serving.worker", "--spec", str(spec_path)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(config, store, process)

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the worker exited:\n{worker.log()}")
        if not runtime.exists():
            return False
        info = json.loads(runtime.read_text())
        worker.url = info["url"]
        return info["pid"] == process.pid

    wait_for(listening, timeout=60, what="the serving worker's runtime file")
    return worker


def infer_body(rows: list[list[float]], **extra: Any) -> dict[str, Any]:
    """An Open Inference Protocol v2 request for ``rows``."""
    return {
        "inputs": [
            {
                "name": "features",
                "datatype": "FP32",
                "shape": [len(rows), len(rows[0])],
                "data": [value for row in rows for value in row],
            }
        ],
        **extra,
    }
