"""``python -m agent.serving.worker --spec FILE``: the serving worker process.

The agent starts it (see ``agent.serving.supervisor``); it can also be
started by hand against a store for debugging. Startup order: read the
spec, open the store, restore every recorded deployment (load its
versions), bind the port, write the runtime file, serve until SIGTERM or
SIGINT, then write the logged predictions that are still queued.

Exit status: 0 after a signal, 2 for bad arguments, 3 when the port
cannot be bound.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import prometheus_client
import uvicorn

from agent.config import LOOPBACK_HOSTS
from agent.logs import configure_logging
from agent.serving.spec import WorkerSpec
from agent.serving.worker.api import build_api
from agent.serving.worker.app import Authorizer, RecentRequests, WorkerApp
from agent.serving.worker.logbook import PredictionLog
from agent.serving.worker.metrics import PredictionLogCollector, ServingMetrics
from agent.serving.worker.router import ModelRouter, Route
from store import Store

logger = logging.getLogger("agent.serving.worker")

EXIT_USAGE = 2
EXIT_BIND_FAILED = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.serving.worker")
    parser.add_argument("--spec", required=True, type=Path, help="worker.json")
    args = parser.parse_args(argv)
    spec = WorkerSpec.read(args.spec)
    configure_logging(spec.log_level, spec.agent_name)
    # Bind before importing torch, so a taken port fails in a fraction of a
    # second and the supervisor's restarts stay quick.
    try:
        sock = _bind(spec)
    except OSError as error:
        logger.error(
            "cannot listen on %s:%s: %s; stop the process that uses the port or set "
            "serving.port",
            spec.host,
            spec.port,
            error.strerror,
        )
        return EXIT_BIND_FAILED
    _run(spec, sock)
    return 0


def _run(spec: WorkerSpec, sock: socket.socket) -> None:
    import torch

    torch.set_num_threads(spec.cpu_threads)
    prometheus_client.disable_created_metrics()
    store = Store(spec.store_path, busy_timeout_ms=spec.busy_timeout_ms)
    metrics = ServingMetrics()
    router = ModelRouter(
        store,
        spec.poll_seconds,
        on_swap=lambda route: _count_swap(metrics, route),
        on_load_failure=lambda model: metrics.load_failures.labels(model).inc(),
    )
    log = PredictionLog(spec.store_path, spec.busy_timeout_ms, spec.log_flush_seconds)
    metrics.registry.register(
        PredictionLogCollector(lambda: log.written_rows, lambda: log.dropped_requests)
    )
    log.start()
    try:
        router.start()
        app = _build_app(spec, store, router, log, metrics)
        _freeze_startup_objects()
        _serve(spec, sock, app)
    finally:
        router.stop()
        log.stop()
        _remove_runtime_file(Path(spec.runtime_file))
        store.close()
        logger.info("serving worker stopped (pid %s)", os.getpid())


def _build_app(
    spec: WorkerSpec,
    store: Store,
    router: ModelRouter,
    log: PredictionLog,
    metrics: ServingMetrics,
) -> WorkerApp:
    recent = RecentRequests()
    authorizer = Authorizer(spec.predict_token_sha256)
    api = build_api(store, router, metrics, recent, authorizer, spec.max_body_bytes)
    return WorkerApp(spec, router, log, metrics, recent, authorizer, api)


def _freeze_startup_objects() -> None:
    # Modules, torch, the app and the models loaded so far live as long as
    # the worker. Freezing them keeps full garbage collections from walking
    # them. With torch, FastAPI and the benchmark's model loaded, a full
    # collection stopped the event loop for about 80 ms unfrozen and 7 ms
    # frozen (the worker's app driven in one process on a 2-core VM).
    gc.collect()
    gc.freeze()


def _count_swap(metrics: ServingMetrics, route: Route) -> None:
    metrics.swaps.labels(route.model).inc()
    metrics.canary_weight.labels(route.model).set(route.canary_weight)


def _bind(spec: WorkerSpec) -> socket.socket:
    if spec.host not in LOOPBACK_HOSTS and spec.tls_cert is None:
        logger.warning(
            "the serving worker listens on %s over plain HTTP (serving.insecure = "
            "true)",
            spec.host,
        )
    family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose
    # proto is IPPROTO_TCP, and accepted sockets inherit proto 0 otherwise.
    # Without TCP_NODELAY, a response sent as two writes waits for the
    # client's delayed ACK, about 40 ms on Linux.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((spec.host, spec.port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    return sock


def _serve(spec: WorkerSpec, sock: socket.socket, app: WorkerApp) -> None:
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        ssl_certfile=spec.tls_cert,
        ssl_keyfile=spec.tls_key,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    port = sock.getsockname()[1]
    _write_runtime_file(spec, port)
    logger.info(
        "serving worker listening on %s (pid %s)", _url(spec, port), os.getpid()
    )

    # After a graceful shutdown uvicorn re-raises the signal that stopped it,
    # under the handler installed before it started. Python's default handler
    # would end the process before the queued predictions are written.
    def request_stop(signum: int, frame: object) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)
    server.run(sockets=[sock])


def _url(spec: WorkerSpec, port: int) -> str:
    scheme = "https" if spec.tls_cert else "http"
    host = f"[{spec.host}]" if ":" in spec.host else spec.host
    return f"{scheme}://{host}:{port}"


def _write_runtime_file(spec: WorkerSpec, port: int) -> None:
    path = Path(spec.runtime_file)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(
        json.dumps({"pid": os.getpid(), "port": port, "url": _url(spec, port)})
    )
    os.replace(temporary, path)


def _remove_runtime_file(path: Path) -> None:
    # A restarted worker may have replaced the file already; leave its copy.
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (FileNotFoundError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
