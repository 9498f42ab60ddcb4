"""Serving throughput and latency against a minimal server, plus swaps and rollback.

Both servers run in this process tree, in the same run, on the same
artifact: a tabular-mlp version shaped like the Shuttle default (9
features, hidden layers 64 and 32, 2 classes) with seeded random weights.

- baseline: ``python bench/serving.py --baseline-server ...``, a FastAPI
  app served by uvicorn whose one async route parses the JSON, calls the
  recipe's ``predict_proba`` and returns the probabilities. No
  validation, routing, logging or metrics.
- rigdeck: ``python -m agent.serving.worker`` on a temporary store, with
  every request logged (``log_sample_rate = 1.0``).

Both use one torch thread, uvicorn's default HTTP parser (h11 when
httptools is not installed) and no access log. A client in this process
keeps ``--concurrency`` HTTP/1.1 keep-alive connections busy, for single
rows and for batches of 64, alternating baseline and rigdeck rounds so
that both see the same background load. Reported: throughput and p50/p99
latency as ratios to the baseline, each server process's CPU time per
request, the worker's log writer process's CPU time per request apart,
and the requests the log dropped.

Then, under the same single-row load on the worker, the release
controller (in this process, on the worker's store) carries out ten
stable/canary swaps and a rollback. Reported: failed requests (non-200 or
connection errors) and the seconds from the rollback call to the last
response from the version rolled back.

Targets: throughput at least 1.0x the baseline, p99 at most 1.5x, zero
failed requests, rollback under 1 s. Exits 1 when one is missed.

    .venv/bin/python bench/serving.py [--seconds 4] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# At module level because FastAPI resolves the route's string annotations
# (from __future__ import annotations) in this module's globals.
from fastapi import Request
from fastapi.responses import JSONResponse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODEL = "bench"
FEATURES = [f"f{index}" for index in range(1, 10)]
HIDDEN_LAYERS = [64, 32]
THROUGHPUT_TARGET = 1.0
P99_TARGET = 1.5
ROLLBACK_TARGET_SECONDS = 1.0
WARMUP_SECONDS = 1.0


# The artifact and the two servers.


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


def start_servers(directory: Path) -> Servers:
    from agent.config import AgentConfig
    from agent.serving.spec import WorkerSpec, read_runtime
    from store import Store, versions
    from store import deployments as deployment_rows
    from store.versions import GateVerdictRow

    config = AgentConfig()
    config.agent.data_dir = directory / "data"
    config.agent.name = "bench"
    config.agent.log_level = "warning"
    config.serving.port = 0
    config.serving.log_sample_rate = 1.0
    config.data_dir.mkdir(parents=True)
    store = Store(config.store_path)
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
                lineage={},
                reference={},
                verdicts=[GateVerdictRow("bench", True, "benchmark", {})],
            )
    with store.write() as db:
        deployment_rows.promote(
            db, MODEL, 1, release_id=None, actor="bench", reason=None
        )

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
    deadline = time.monotonic() + 60
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


# The load client.


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    # (completion time, version) of every response, when versions are recorded.
    answers: list[tuple[float, str | None]] = field(default_factory=list)
    failures: int = 0
    seconds: float = 0.0


def request_bytes(rows: int, rng: random.Random) -> bytes:
    data = [round(rng.uniform(-3, 3), 4) for _ in range(rows * len(FEATURES))]
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "datatype": "FP32",
                    "shape": [rows, len(FEATURES)],
                    "data": data,
                }
            ]
        }
    ).encode()
    return (
        f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _connection(
    port: int, request: bytes, until, result: LoadResult, versions: bool
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while not until():
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
    request: bytes,
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

    async def main() -> None:
        await asyncio.gather(
            *(
                _connection(port, request, until, result, versions)
                for _ in range(concurrency)
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
class Figures:
    requests: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    child_cpu_seconds: float = 0.0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(servers: Servers, rows: int, args) -> dict[str, Figures]:
    request = request_bytes(rows, random.Random(rows))
    targets = {
        "baseline": (servers.baseline_port, servers.baseline.pid),
        "rigdeck": (servers.worker_port, servers.worker.pid),
    }
    figures = {name: Figures() for name in targets}
    for port, _ in targets.values():
        run_load(port, request, args.concurrency, seconds=WARMUP_SECONDS)
    for _ in range(args.rounds):
        for name, (port, pid) in targets.items():
            own_before, children_before = cpu_seconds(pid)
            result = run_load(port, request, args.concurrency, seconds=args.seconds)
            figure = figures[name]
            own_after, children_after = cpu_seconds(pid)
            figure.cpu_seconds += own_after - own_before
            figure.child_cpu_seconds += children_after - children_before
            figure.requests += len(result.latencies)
            figure.seconds += result.seconds
            figure.failures += result.failures
            figure.latencies += result.latencies
    return figures


def swaps_and_rollback(servers: Servers, args) -> tuple[int, float, int]:
    """Ten swaps and a rollback under load; return failures, rollback s, requests."""
    import httpx

    from agent.releases import ReleaseController

    controller = ReleaseController(servers.store, servers.config)
    url = f"http://127.0.0.1:{servers.worker_port}"

    def served() -> tuple[str, ...]:
        return tuple(httpx.get(f"{url}/v2/models/{MODEL}").json()["versions"])

    def wait_served(expected: tuple[str, ...]) -> None:
        deadline = time.monotonic() + 30
        while served() != expected:
            if time.monotonic() > deadline:
                raise SystemExit(f"The worker never served {expected}.")
            time.sleep(0.01)
        time.sleep(0.2)

    stop = threading.Event()
    holder: dict[str, LoadResult] = {}
    request = request_bytes(1, random.Random(1))
    load = threading.Thread(
        target=lambda: holder.update(
            result=run_load(
                servers.worker_port, request, args.concurrency, stop=stop, versions=True
            )
        )
    )
    load.start()
    stable, other = 1, 2
    for _ in range(5):
        release = controller.request(MODEL, other, "bench-operator", "benchmark swap")
        controller.approve(release["id"], "bench-approver", "benchmark swap")
        wait_served((str(stable), str(other)))
        controller.promote(release["id"], "bench-approver", "benchmark swap")
        wait_served((str(other),))
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
    return result.failures, last_old - called, len(result.answers)


def log_dropped_requests(port: int) -> int:
    """Read the worker's count of requests its full log queue dropped."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    for line in text.splitlines():
        if line.startswith("rigdeck_serving_log_dropped_requests_total "):
            return int(float(line.split()[1]))
    raise SystemExit("The worker's /metrics has no log_dropped_requests_total.")


# Report.


def _row(
    figure: str, baseline: str, ours: str, ratio: float | None, target: str
) -> tuple[str, ...]:
    return (figure, baseline, ours, "-" if ratio is None else f"{ratio:.2f}x", target)


def batch_rows(label: str, base: Figures, ours: Figures) -> list[tuple[str, ...]]:
    base_cpu = base.cpu_seconds / base.requests * 1e6
    ours_cpu = ours.cpu_seconds / ours.requests * 1e6
    p50 = base.percentile(0.5), ours.percentile(0.5)
    p99 = base.percentile(0.99), ours.percentile(0.99)
    return [
        _row(
            f"throughput, {label} (req/s)",
            f"{base.throughput:.0f}",
            f"{ours.throughput:.0f}",
            ours.throughput / base.throughput,
            f">= {THROUGHPUT_TARGET}x",
        ),
        _row(
            f"p50 latency, {label} (ms)",
            f"{p50[0] * 1e3:.2f}",
            f"{p50[1] * 1e3:.2f}",
            p50[1] / p50[0],
            "-",
        ),
        _row(
            f"p99 latency, {label} (ms)",
            f"{p99[0] * 1e3:.2f}",
            f"{p99[1] * 1e3:.2f}",
            p99[1] / p99[0],
            f"<= {P99_TARGET}x",
        ),
        _row(
            f"CPU per request, {label}, server process (us)",
            f"{base_cpu:.0f}",
            f"{ours_cpu:.0f}",
            ours_cpu / base_cpu,
            "-",
        ),
        _row(
            f"CPU per request, {label}, log writer process (us)",
            "-",
            f"{ours.child_cpu_seconds / ours.requests * 1e6:.0f}",
            None,
            "-",
        ),
        _row(
            f"failed requests, {label}",
            str(base.failures),
            str(ours.failures),
            None,
            "0",
        ),
    ]


def report(figures: dict[int, dict[str, Figures]], swaps, dropped: int) -> bool:
    """Print the table; return whether every target was met."""
    rows = []
    passed = True
    for batch, pair in figures.items():
        base, ours = pair["baseline"], pair["rigdeck"]
        rows += batch_rows("1 row" if batch == 1 else f"{batch} rows", base, ours)
        passed &= ours.throughput / base.throughput >= THROUGHPUT_TARGET
        passed &= ours.percentile(0.99) / base.percentile(0.99) <= P99_TARGET
        passed &= ours.failures == 0
    failures, rollback_seconds, answered = swaps
    passed &= failures == 0 and rollback_seconds < ROLLBACK_TARGET_SECONDS
    rows += [
        _row(
            f"failed requests, 10 swaps + rollback ({answered} answered)",
            "-",
            str(failures),
            None,
            "0",
        ),
        _row("requests dropped from the log", "-", str(dropped), None, "-"),
        _row(
            "rollback call to last old-version answer (s)",
            "-",
            f"{rollback_seconds:.3f}",
            None,
            f"< {ROLLBACK_TARGET_SECONDS}",
        ),
    ]
    header = ("figure", "baseline", "rigdeck", "ratio", "target")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(5)]
    for row in (header, *rows):
        cells = zip(row, widths, strict=True)
        print("  ".join(cell.ljust(width) for cell, width in cells).rstrip())
    return passed


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
    args = parser.parse_args()
    if args.baseline_server:
        artifact, port = args.baseline_server
        baseline_server(artifact, int(port))
        return 0
    print(environment(args))
    with tempfile.TemporaryDirectory(prefix="rigdeck-bench-serving-") as temporary:
        servers = start_servers(Path(temporary))
        try:
            figures = {rows: measure(servers, rows, args) for rows in (1, 64)}
            swaps = swaps_and_rollback(servers, args)
            dropped = log_dropped_requests(servers.worker_port)
        finally:
            for process in (servers.baseline, servers.worker):
                process.terminate()
                process.wait(30)
            servers.store.close()
    return 0 if report(figures, swaps, dropped) else 1


if __name__ == "__main__":
    sys.exit(main())
