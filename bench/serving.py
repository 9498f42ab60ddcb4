"""Serving throughput and latency against a minimal server, plus swaps and rollback.

Every server runs in this process tree, in the same run, on the same
artifact: a tabular-mlp version shaped like the Shuttle default (9
features, hidden layers 64 and 32, 2 classes) with seeded random weights.

- baseline: ``python bench/serving.py --baseline-server ...``, a FastAPI
  app served by uvicorn whose one async route parses the JSON, calls the
  recipe's ``predict_proba`` and returns the probabilities. No
  validation, routing, logging or metrics.
- rigdeck: ``python -m agent.serving.worker`` on a temporary store, with
  every request logged (``log_sample_rate = 1.0``).
- rigdeck, every monitor on: the same worker while a monitor process
  (``python bench/serving.py --monitor-process ...``) runs what the
  agent's control process runs for drift: ``agent.serving.PredictionFeed``
  feeding ``agent.drift.DriftService``, wired as ``agent.daemon`` wires
  them, with stand-ins that only count the retrain and abort-canary
  actions. The version names its 9 features and carries reference
  statistics of the load's distribution, so the service watches each
  feature, the prediction and the error. The error monitor stays idle,
  because no feedback labels are sent.

Both servers use one torch thread, uvicorn's default HTTP parser (h11
when httptools is not installed) and no access log. A client in this
process keeps ``--concurrency`` HTTP/1.1 keep-alive connections busy,
for single rows and for batches of 64, cycling through the same 1,024
rows of uniform random features. For each batch size, rounds of the
baseline and rigdeck alternate first; then the monitor process starts
and rounds of the baseline and monitored rigdeck alternate, so that each
comparison runs under the same background load. Each monitored round's
figures include the monitor process's CPU time until ``SETTLE_SECONDS``
after the load stops, when it has caught up.

Reported: throughput and p50/p99 latency as ratios to the baseline
rounds alternating with them, and each server process's CPU time per
request. Apart from that, the log writer's and the monitor process's
CPU time per request, the rows the stable prediction monitor accepted,
the rows skipped under overload (by the feed's sample and by the drift
service's queue), drift events, and the requests the log dropped.

Then, under the same single-row load on the worker, the release
controller (in this process, on the worker's store) carries out ten
stable/canary swaps and a rollback, with each canary at 25 % weight for
``CANARY_SECONDS``. Reported: failed requests (non-200 or connection
errors), the seconds from the rollback call to the last response from
the version rolled back, and the share of requests the canary served.

Targets: throughput at least 1.0x the baseline and p99 at most 1.5x,
with and without monitors; zero failed requests; no request dropped from
the log; rollback under 1 s; canary share within 0.03 of 0.25. The
figures go through ``bench/_results.py``; the script exits 1 when a
target is missed.

    .venv/bin/python bench/serving.py [--seconds 4] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from _results import Figure, report

# At module level because FastAPI resolves the route's string annotations
# (from __future__ import annotations) in this module's globals.
from fastapi import Request
from fastapi.responses import JSONResponse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODEL = "bench"
FEATURES = [f"f{index}" for index in range(1, 10)]
HIDDEN_LAYERS = [64, 32]
BATCH_SIZES = (1, 64)
POOL_ROWS = 1024
FEATURE_RANGE = 3.0
THROUGHPUT_TARGET = 1.0
P99_TARGET = 1.5
ROLLBACK_TARGET_SECONDS = 1.0
CANARY_WEIGHT = 0.25
CANARY_TOLERANCE = 0.03
CANARY_SECONDS = 0.5
WARMUP_SECONDS = 1.0
START_TIMEOUT_SECONDS = 60.0
SETTLE_SECONDS = 2.0
SERVERS = ("baseline", "rigdeck", "monitor phase baseline", "monitored")


# The configuration, the artifact and the servers.


def bench_config(directory: Path):
    """Return the agent configuration every process of the benchmark uses."""
    from agent.config import parse_config

    raw = {
        "agent": {"name": "bench", "data_dir": "data", "log_level": "warning"},
        "serving": {"port": 0, "log_sample_rate": 1.0},
        "models": [
            {
                "name": MODEL,
                "dataset": {"plugin": "river", "options": {"name": "Shuttle"}},
                "recipe": {"plugin": "tabular-mlp"},
                "release": {"canary_weight": CANARY_WEIGHT},
            }
        ],
    }
    return parse_config(raw, directory / "agent.toml")


def write_artifact(directory: Path, seed: int) -> str:
    """Write a sealed tabular-mlp artifact; return the weights file's sha256."""
    import io

    import torch

    from plugins.recipes.tabular_mlp import build_network
    from store.artifacts import write_atomic, write_manifest

    torch.manual_seed(seed)
    network = build_network(len(FEATURES), HIDDEN_LAYERS, 2, "relu", 0.0)
    buffer = io.BytesIO()
    torch.save(
        {key: value.detach() for key, value in network.state_dict().items()}, buffer
    )
    weights = write_atomic(directory / "model.pt", buffer.getvalue())
    metadata = {
        "format": 1,
        "recipe": "tabular-mlp",
        "feature_names": FEATURES,
        "target_name": "anomaly",
        "classes": [0, 1],
        "positive_class": 1,
        "layer_sizes": [len(FEATURES), *HIDDEN_LAYERS, 2],
        "activation": "relu",
        "dropout": 0.0,
        "standardise": {"mean": [0.0] * len(FEATURES), "std": [1.0] * len(FEATURES)},
        "params": {},
        "torch_version": torch.__version__,
    }
    write_atomic(directory / "model.json", json.dumps(metadata).encode())
    write_manifest(directory, ["model.pt", "model.json"])
    return weights.sha256


def reference_statistics() -> dict:
    """Return reference statistics of the distribution the load's features follow."""
    import numpy as np

    from plugins.stats import feature_statistics

    rng = np.random.default_rng(0)
    sample = rng.uniform(-FEATURE_RANGE, FEATURE_RANGE, (20_000, len(FEATURES)))
    return feature_statistics(sample.round(4), FEATURES)


def baseline_server(artifact: str, port: int) -> None:
    """Serve the same model behind the smallest FastAPI route: the baseline."""
    import numpy as np
    import torch
    import uvicorn
    from fastapi import FastAPI

    from plugins.recipes.tabular_mlp import load_model

    torch.set_num_threads(1)
    model = load_model(artifact)
    app = FastAPI()

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> JSONResponse:
        body = await request.json()
        tensor = body["inputs"][0]
        features = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        probabilities = model.predict_proba(features)
        output = {
            "name": "probabilities",
            "datatype": "FP32",
            "shape": list(probabilities.shape),
            "data": probabilities.ravel().tolist(),
        }
        return JSONResponse({"model_name": name, "outputs": [output]})

    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


@dataclass
class Servers:
    directory: Path
    store: object
    config: object
    baseline: subprocess.Popen
    worker: subprocess.Popen
    baseline_port: int
    worker_port: int


def prepare_store(directory: Path):
    """Create the store with two versions of the model, version 1 deployed."""
    from store import Store, versions
    from store import deployments as deployment_rows
    from store.versions import GateVerdictRow

    config = bench_config(directory)
    config.data_dir.mkdir(parents=True)
    store = Store(config.store_path)
    reference = reference_statistics()
    with store.write() as db:
        db.conn.execute("INSERT INTO models (name, created_at) VALUES (?, 0)", (MODEL,))
    for number in (1, 2):
        artifact = config.data_dir / "artifacts" / f"v{number}"
        sha256 = write_artifact(artifact, seed=number)
        with store.write() as db:
            versions.insert_version(
                db,
                model=MODEL,
                run_id=None,
                artifact_path=str(artifact),
                artifact_sha256=sha256,
                metrics={},
                lineage={"dataset": {"features": FEATURES}},
                reference=reference,
                verdicts=[GateVerdictRow("bench", True, "benchmark", {})],
            )
    with store.write() as db:
        deployment_rows.promote(
            db, MODEL, 1, release_id=None, actor="bench", reason=None
        )
    return config, store


def start_servers(directory: Path) -> Servers:
    from agent.serving.spec import WorkerSpec, read_runtime

    config, store = prepare_store(directory)
    baseline_port = free_port()
    baseline = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--baseline-server",
            str(config.data_dir / "artifacts" / "v1"),
            str(baseline_port),
        ],
        cwd=REPO,
    )
    spec = config.data_dir / "serving" / "worker.json"
    WorkerSpec.from_config(config).write(spec)
    log = (config.data_dir / "worker.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "agent.serving.worker", "--spec", str(spec)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        runtime = read_runtime(config.data_dir)
        if runtime and _answers(baseline_port):
            return Servers(
                directory,
                store,
                config,
                baseline,
                worker,
                baseline_port,
                runtime["port"],
            )
        if baseline.poll() is not None or worker.poll() is not None:
            break
        time.sleep(0.05)
    for process in (baseline, worker):
        process.kill()
        process.wait(30)
    raise SystemExit(f"A server did not start; see {config.data_dir / 'worker.log'}.")


def free_port() -> int:
    # The port may be taken between this check and the baseline's bind; the
    # benchmark then stops with "did not start" and can be run again.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


# The monitor process: what the agent's control process runs for drift.


def monitor_process(directory: Path, summary_path: Path) -> None:
    """Run the prediction feed and the drift service until SIGTERM.

    Writes ``summary_path.ready`` once both run, then on SIGTERM stops them
    (the drift service first processes what is queued and checkpoints)
    and writes the summary JSON.
    """
    from agent.drift import DriftService
    from agent.serving import PredictionFeed
    from store import Store

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    config = bench_config(directory)
    store = Store(config.store_path)
    actions: list[str] = []
    drift = DriftService(
        store,
        config,
        retrain=lambda model: actions.append(f"retrain {model}"),
        abort_canary=lambda model, reason: actions.append(f"abort {model}"),
    )
    feed = PredictionFeed(store)
    passed = 0

    def on_predictions(rows: list[dict]) -> None:
        nonlocal passed
        passed += len(rows)
        drift.on_predictions(rows)

    feed.subscribe(on_predictions)
    before = _monitor_counts(store)
    drift.start()
    feed.start()
    summary_path.with_suffix(".ready").write_text(str(os.getpid()))
    while not stop.wait(0.5):
        pass
    feed.stop()
    drift.stop()
    after = _monitor_counts(store)
    summary = {
        "passed": passed,
        "feed_skipped": sum(feed.skipped_rows.values()),
        **{key: after[key] - before[key] for key in after},
        "actions": len(actions),
    }
    summary_path.write_text(json.dumps(summary))
    store.close()


def _monitor_counts(store) -> dict[str, int]:
    """Return the stable prediction monitor's counts and the drift event count."""
    from agent.drift import rows

    stored = rows.load_monitors(store.db, MODEL, "stable").get("prediction")
    counts = ((stored or {}).get("state") or {}).get("counts") or {}
    events = store.db.conn.execute("SELECT COUNT(*) FROM drift_events").fetchone()[0]
    return {
        "accepted": counts.get("accepted", 0),
        "queue_skipped": counts.get("skipped", 0),
        "events": events,
    }


class MonitorProcess:
    """Starts the monitor process, waits until it runs, stops it on exit."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.summary_path = directory / f"monitor-{name}.json"
        self.process: subprocess.Popen | None = None
        self.summary: dict[str, int] = {}

    def __enter__(self) -> MonitorProcess:
        ready = self.summary_path.with_suffix(".ready")
        self.process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--monitor-process",
                str(self.directory),
                str(self.summary_path),
            ],
            cwd=REPO,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise SystemExit("The monitor process did not start.")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)
        if self.summary_path.exists():
            self.summary = json.loads(self.summary_path.read_text())
        elif exc[0] is None:
            raise SystemExit("The monitor process wrote no summary.")


# The load client.


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    # (completion time, version) of every response, when versions are recorded.
    answers: list[tuple[float, str | None]] = field(default_factory=list)
    failures: int = 0
    seconds: float = 0.0


def request_pool(rows: int) -> list[bytes]:
    """Return HTTP requests of ``rows`` rows each that together carry the pool rows.

    Every batch size sends the same ``POOL_ROWS`` rows of uniform random
    features, so the drift monitors see one distribution throughout.
    """
    rng = random.Random(0)
    width = len(FEATURES)
    values = [
        round(rng.uniform(-FEATURE_RANGE, FEATURE_RANGE), 4)
        for _ in range(POOL_ROWS * width)
    ]
    requests = []
    for start in range(0, POOL_ROWS * width, rows * width):
        tensor = {
            "name": "features",
            "datatype": "FP32",
            "shape": [rows, width],
            "data": values[start : start + rows * width],
        }
        body = json.dumps({"inputs": [tensor]}).encode()
        head = (
            f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: bench\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


async def _connection(
    port: int,
    requests: list[bytes],
    offset: int,
    until,
    result: LoadResult,
    versions: bool,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = offset
    try:
        while not until():
            request = requests[sent % len(requests)]
            sent += 1
            started = time.perf_counter()
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    head.lower().split(b"content-length:")[1].split(b"\r\n")[0]
                )
                body = await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError):
                result.failures += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            if head[9:12] != b"200":
                result.failures += 1
                continue
            result.latencies.append(time.perf_counter() - started)
            if versions:
                version = json.loads(body).get("model_version")
                result.answers.append((time.monotonic(), version))
    finally:
        writer.close()


def run_load(
    port: int,
    requests: list[bytes],
    concurrency: int,
    seconds: float | None = None,
    stop: threading.Event | None = None,
    versions: bool = False,
) -> LoadResult:
    """Keep ``concurrency`` connections busy for ``seconds`` or until ``stop``."""
    result = LoadResult()
    deadline = time.monotonic() + (seconds or 1e9)

    def until() -> bool:
        return time.monotonic() >= deadline or (stop is not None and stop.is_set())

    # Connections start at evenly spaced offsets, so that a stretch of the
    # stream contains many different rows, not one row sent by every connection
    # in turn (which the drift monitors would rightly find non-random).
    step = max(1, len(requests) // concurrency)

    async def main() -> None:
        await asyncio.gather(
            *(
                _connection(port, requests, index * step, until, result, versions)
                for index in range(concurrency)
            )
        )

    started = time.monotonic()
    asyncio.run(main())
    result.seconds = time.monotonic() - started
    return result


def cpu_seconds(pid: int) -> tuple[float, float]:
    """Return user+system seconds of a process and, apart, of its descendants."""
    process = psutil.Process(pid)
    own = sum(process.cpu_times()[:2])
    children = 0.0
    for child in process.children(recursive=True):
        try:
            children += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return own, children


# Measurements.


@dataclass
class Measured:
    """Totals of one server over every round of one batch size."""

    requests: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    child_cpu_seconds: float = 0.0
    monitor_cpu_seconds: float = 0.0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)
    monitor: dict[str, int] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def per_request_us(self, seconds: float) -> float:
        return seconds / self.requests * 1e6


def measure(servers: Servers, rows: int, args) -> dict[str, Measured]:
    """Alternate baseline and rigdeck rounds, then baseline and monitored rounds."""
    requests = request_pool(rows)
    baseline = (servers.baseline_port, servers.baseline.pid)
    worker = (servers.worker_port, servers.worker.pid)
    measured = {name: Measured() for name in SERVERS}
    for port, _ in (baseline, worker):
        run_load(port, requests, args.concurrency, seconds=WARMUP_SECONDS)
    for _ in range(args.rounds):
        _measure_round(measured["baseline"], *baseline, requests, args)
        _measure_round(measured["rigdeck"], *worker, requests, args)
    with MonitorProcess(servers.directory, f"{rows}-rows") as monitor:
        # The drift service builds its monitors on the first rows it gets.
        run_load(worker[0], requests, args.concurrency, seconds=WARMUP_SECONDS)
        time.sleep(SETTLE_SECONDS)
        for _ in range(args.rounds):
            _measure_round(
                measured["monitor phase baseline"], *baseline, requests, args
            )
            _measure_round(
                measured["monitored"], *worker, requests, args, monitor.process.pid
            )
    measured["monitored"].monitor = monitor.summary
    return measured


def _measure_round(
    measured: Measured,
    port: int,
    pid: int,
    requests: list[bytes],
    args,
    monitor_pid: int | None = None,
) -> None:
    own_before, children_before = cpu_seconds(pid)
    monitor_before = cpu_seconds(monitor_pid)[0] if monitor_pid else 0.0
    result = run_load(port, requests, args.concurrency, seconds=args.seconds)
    own_after, children_after = cpu_seconds(pid)
    if monitor_pid:
        # The monitors take up to one poll interval to catch up after the
        # load stops; their CPU time for this round includes that.
        time.sleep(SETTLE_SECONDS)
        measured.monitor_cpu_seconds += cpu_seconds(monitor_pid)[0] - monitor_before
    measured.cpu_seconds += own_after - own_before
    measured.child_cpu_seconds += children_after - children_before
    measured.requests += len(result.latencies)
    measured.seconds += result.seconds
    measured.failures += result.failures
    measured.latencies += result.latencies


@dataclass
class SwapResult:
    failures: int
    answered: int
    rollback_seconds: float
    canary_share: float
    canary_answers: int


def swaps_and_rollback(servers: Servers, args) -> SwapResult:
    """Ten swaps and a rollback under single-row load."""
    import httpx

    from agent.releases import ReleaseController

    controller = ReleaseController(servers.store, servers.config)
    url = f"http://127.0.0.1:{servers.worker_port}"

    def served() -> tuple[str, ...]:
        return tuple(httpx.get(f"{url}/v2/models/{MODEL}").json()["versions"])

    def wait_served(expected: tuple[str, ...]) -> float:
        """Wait until the worker serves ``expected``; return when it did."""
        deadline = time.monotonic() + 30
        while served() != expected:
            if time.monotonic() > deadline:
                raise SystemExit(f"The worker never served {expected}.")
            time.sleep(0.01)
        return time.monotonic()

    stop = threading.Event()
    holder: dict[str, LoadResult] = {}
    requests = request_pool(1)
    load = threading.Thread(
        target=lambda: holder.update(
            result=run_load(
                servers.worker_port,
                requests,
                args.concurrency,
                stop=stop,
                versions=True,
            )
        )
    )
    load.start()
    stable, other = 1, 2
    # (start, end, canary version) of each canary phase.
    canary_phases: list[tuple[float, float, str]] = []
    for _ in range(5):
        release = controller.request(MODEL, other, "bench-operator", "benchmark swap")
        controller.approve(release["id"], "bench-approver", "benchmark swap")
        started = wait_served((str(stable), str(other)))
        time.sleep(CANARY_SECONDS)
        canary_phases.append((started, time.monotonic(), str(other)))
        controller.promote(release["id"], "bench-approver", "benchmark swap")
        wait_served((str(other),))
        time.sleep(0.2)
        stable, other = other, stable
    called = time.monotonic()
    controller.rollback(MODEL, "bench-operator", "benchmark rollback")
    wait_served((str(other),))
    time.sleep(0.5)
    stop.set()
    load.join()
    result = holder["result"]
    old = [at for at, version in result.answers if version == str(stable)]
    last_old = max((at for at in old if at >= called), default=called)
    share, counted = _canary_share(result.answers, canary_phases)
    return SwapResult(
        result.failures, len(result.answers), last_old - called, share, counted
    )


def _canary_share(
    answers: list[tuple[float, str | None]],
    phases: list[tuple[float, float, str]],
) -> tuple[float, int]:
    """Return the canary's share of the responses in canary phases, and their count.

    A response counts when it completed inside a phase, after the worker
    served the canary. Requests that started just before the swap may still
    have gone to stable alone, so the share is biased down by a few
    requests in thousands.
    """
    canary = total = 0
    for at, version in answers:
        for start, end, canary_version in phases:
            if start <= at <= end:
                total += 1
                canary += version == canary_version
                break
    return (canary / total if total else 0.0), total


def log_dropped_requests(port: int) -> int:
    """Read the worker's count of requests its full log queue dropped."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    for line in text.splitlines():
        if line.startswith("rigdeck_serving_log_dropped_requests_total "):
            return int(float(line.split()[1]))
    raise SystemExit("The worker's /metrics has no log_dropped_requests_total.")


# Figures.


def batch_figures(label: str, measured: dict[str, Measured]) -> list[Figure]:
    base, ours, monitor_base, monitored = (measured[name] for name in SERVERS)
    figures = _load_figures(label, base, ours, "")
    figures += [
        Figure(
            f"CPU per request, {label}, log writer process",
            ours.per_request_us(ours.child_cpu_seconds),
            None,
            "µs",
            "",
            None,
        ),
        Figure(
            f"failed requests, {label}",
            ours.failures,
            None,
            "",
            "0",
            ours.failures == 0,
        ),
    ]
    figures += _load_figures(label, monitor_base, monitored, ", every monitor on")
    figures += monitor_figures(label, monitored)
    return figures


def _load_figures(
    label: str, base: Measured, ours: Measured, suffix: str
) -> list[Figure]:
    p50 = base.percentile(0.5) * 1e3, ours.percentile(0.5) * 1e3
    p99 = base.percentile(0.99) * 1e3, ours.percentile(0.99) * 1e3
    return [
        Figure(
            f"throughput, {label}{suffix}",
            ours.throughput,
            base.throughput,
            "req/s",
            f">= {THROUGHPUT_TARGET}x",
            ours.throughput / base.throughput >= THROUGHPUT_TARGET,
        ),
        Figure(f"p50 latency, {label}{suffix}", p50[1], p50[0], "ms", "", None),
        Figure(
            f"p99 latency, {label}{suffix}",
            p99[1],
            p99[0],
            "ms",
            f"<= {P99_TARGET}x",
            p99[1] / p99[0] <= P99_TARGET,
        ),
        Figure(
            f"CPU per request, {label}{suffix}, server process",
            ours.per_request_us(ours.cpu_seconds),
            base.per_request_us(base.cpu_seconds),
            "µs",
            "",
            None,
        ),
    ]


def monitor_figures(label: str, monitored: Measured) -> list[Figure]:
    summary = monitored.monitor
    return [
        Figure(
            f"failed requests, {label}, every monitor on",
            monitored.failures,
            None,
            "",
            "0",
            monitored.failures == 0,
        ),
        Figure(
            f"CPU per request, {label}, monitor process",
            monitored.per_request_us(monitored.monitor_cpu_seconds),
            None,
            "µs",
            "",
            None,
        ),
        Figure(
            f"rows the prediction monitor accepted, {label}",
            summary["accepted"],
            None,
            "rows",
            "",
            None,
        ),
        Figure(
            f"rows the feed's sample skipped, {label}",
            summary["feed_skipped"],
            None,
            "rows",
            "",
            None,
        ),
        Figure(
            f"rows the drift queue skipped, {label}",
            summary["queue_skipped"],
            None,
            "rows",
            "",
            None,
        ),
        Figure(f"drift events, {label}", summary["events"], None, "", "", None),
    ]


def swap_figures(swaps: SwapResult, dropped: int) -> list[Figure]:
    return [
        Figure(
            f"failed requests, 10 swaps + rollback ({swaps.answered} answered)",
            swaps.failures,
            None,
            "",
            "0",
            swaps.failures == 0,
        ),
        Figure(
            "rollback call to last old-version answer",
            swaps.rollback_seconds,
            None,
            "s",
            f"< {ROLLBACK_TARGET_SECONDS:g} s",
            swaps.rollback_seconds < ROLLBACK_TARGET_SECONDS,
        ),
        Figure(
            f"canary share at {CANARY_WEIGHT:.0%} weight "
            f"({swaps.canary_answers} answers)",
            swaps.canary_share,
            None,
            "",
            f"{CANARY_WEIGHT} ± {CANARY_TOLERANCE}",
            abs(swaps.canary_share - CANARY_WEIGHT) <= CANARY_TOLERANCE,
        ),
        Figure("requests dropped from the log", dropped, None, "", "0", dropped == 0),
    ]


def environment(args) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()} CPUs ({cpu}), load average {os.getloadavg()[0]:.2f} at "
        f"start, Python {platform.python_version()}, torch {torch.__version__}; "
        f"{args.concurrency} connections, {args.rounds} alternating rounds of "
        f"{args.seconds} s per server and batch size"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="Seconds per round.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds per server.")
    parser.add_argument("--concurrency", type=int, default=16, help="Connections.")
    parser.add_argument("--baseline-server", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--monitor-process", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        artifact, port = args.baseline_server
        baseline_server(artifact, int(port))
        return 0
    if args.monitor_process:
        directory, summary = args.monitor_process
        monitor_process(Path(directory), Path(summary))
        return 0
    print(environment(args))
    with tempfile.TemporaryDirectory(prefix="rigdeck-bench-serving-") as temporary:
        servers = start_servers(Path(temporary))
        try:
            measured = {rows: measure(servers, rows, args) for rows in BATCH_SIZES}
            swaps = swaps_and_rollback(servers, args)
            dropped = log_dropped_requests(servers.worker_port)
        finally:
            for process in (servers.baseline, servers.worker):
                process.terminate()
                process.wait(30)
            servers.store.close()
    figures = []
    for rows, by_server in measured.items():
        figures += batch_figures("1 row" if rows == 1 else f"{rows} rows", by_server)
    figures += swap_figures(swaps, dropped)
    return report("serving", figures)


if __name__ == "__main__":
    sys.exit(main())
