"""``rigdeck-agent run``: the agent process in the foreground.

Startup order: take the data-directory lock, open the store, start the
services (telemetry, and what later parts add), then serve the API until
SIGTERM or SIGINT, and stop everything in reverse order.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Protocol

import uvicorn

from agent.api import create_app
from agent.config import LOOPBACK_HOSTS, AgentConfig
from agent.context import AgentContext
from agent.errors import AgentError
from agent.lock import DataDirLock
from agent.logs import configure_logging
from store import Store

logger = logging.getLogger(__name__)

RUNTIME_FILE = "agent.json"


class Service(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def run_agent(config: AgentConfig) -> None:
    """Run the agent until a signal stops it. Raises LockError if one already runs."""
    configure_logging(config.agent.log_level, config.agent.name)
    # The store, run logs and artifacts hold predictions, features and audit
    # entries: readable by the agent's user only.
    os.umask(0o077)
    lock = DataDirLock(config.data_dir)
    lock.acquire()
    try:
        _run_locked(config)
    finally:
        lock.release()


def _run_locked(config: AgentConfig) -> None:
    store = Store(config.store_path, busy_timeout_ms=config.store.busy_timeout_ms)
    context = AgentContext(config=config, store=store)
    services = _build_services(context)
    sock = _bind(config)
    port = sock.getsockname()[1]
    started: list[Service] = []
    try:
        for service in services:
            service.start()
            started.append(service)
        _write_runtime_file(config, port)
        logger.info(
            "agent %s listening on %s (pid %s, data_dir %s)",
            config.agent.name,
            _url(config, port),
            os.getpid(),
            config.data_dir,
        )
        _serve(context, sock)
    finally:
        for service in reversed(started):
            try:
                service.stop()
            except Exception:
                logger.exception("stopping %s failed", type(service).__name__)
        (config.data_dir / RUNTIME_FILE).unlink(missing_ok=True)
        store.close()
        logger.info("agent %s stopped", config.agent.name)


def _build_services(context: AgentContext) -> list[Service]:
    from agent.telemetry import Sampler
    from agent.training.service import TrainingService, gpu_inventory

    sampler = Sampler(
        context.store,
        context.config.telemetry,
        context.name,
        on_gpu_lost=lambda lost: _alert_gpu_lost(context, lost),
    )
    context.sampler = sampler
    # TrainingService.start() first marks runs left by a killed agent
    # interrupted and ends their orphaned workers, then starts the run
    # supervisor and the scheduler.
    training = TrainingService(context.store, context.config, gpu_inventory(sampler))
    context.training = training
    serving, releases = _build_serving(context)
    drift, notifications = _build_drift(context)
    # Drift stops after serving, so the rows serving queued drain and the
    # monitors checkpoint before the store closes.
    return [sampler, training, drift, notifications, serving, releases]


def _alert_gpu_lost(context: AgentContext, lost) -> None:
    from store import alerts

    with context.store.write() as db:
        alerts.raise_alert(
            db,
            kind="gpu_lost",
            severity="critical",
            source=f"gpu/{lost.index}",
            message=lost.message,
        )


def _build_drift(context: AgentContext) -> tuple[Service, Service]:
    from agent.drift import DriftService, NotificationService

    runs = context.training.runs
    controller = context.releases.controller
    drift = DriftService(
        context.store,
        context.config,
        retrain=lambda model, reason: runs.fire(
            model,
            scheduled_at=None,
            trigger="drift",
            actor="drift-monitor",
            reason=reason,
        ),
        abort_canary=lambda model, reason: controller.abort_canary(
            model, "drift-monitor", reason
        ),
    )
    context.serving.feed.subscribe(drift.on_predictions, drift.on_skipped)
    context.drift = drift
    return drift, NotificationService(context.store, context.config)


def _build_serving(context: AgentContext) -> tuple[Service, Service]:
    from agent.releases import ReleaseService
    from agent.serving import ServingService

    # The supervisor starts the worker once a deployment exists, ending first
    # a worker left running by a killed agent. _build_drift subscribes the
    # drift monitors to serving.feed for the logged predictions.
    serving = ServingService(context.store, context.config)
    context.serving = serving
    releases = ReleaseService(
        context.store, context.config, on_deployment_change=serving.deployment_changed
    )
    context.releases = releases
    return serving, releases


def _bind(config: AgentConfig) -> socket.socket:
    host = config.api.host
    if host not in LOOPBACK_HOSTS and config.api.tls_cert is None:
        logger.warning(
            "the control API listens on %s over plain HTTP (api.insecure = true); "
            "tokens cross the network in clear text",
            host,
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP (not 0) lets asyncio recognise a TCP socket and set
    # TCP_NODELAY; without it each keep-alive response waits ~40 ms for
    # Nagle's algorithm.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, config.api.port))
    except OSError as error:
        sock.close()
        raise AgentError(
            f"Cannot listen on {host}:{config.api.port}: {error.strerror}. Stop the "
            f"process that uses this port, or set api.port in {config.path} "
            "(0 picks a free port)."
        ) from error
    # Listening now lets clients queue while the services start.
    sock.listen(2048)
    return sock


def _serve(context: AgentContext, sock: socket.socket) -> None:
    api = context.config.api
    server_config = uvicorn.Config(
        create_app(context, extra_routers=tuple(context.services.get("routers", ()))),
        log_config=None,
        ssl_certfile=str(api.tls_cert) if api.tls_cert else None,
        ssl_keyfile=str(api.tls_key) if api.tls_key else None,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(server_config)

    # After a graceful shutdown uvicorn re-raises the signal that stopped it
    # under the handler that was installed before it started. Python's
    # default handler would kill the process before the services stop and
    # agent.json is removed, so this handler only sets should_exit instead.
    # It also covers a signal that arrives before uvicorn installs its own.
    def request_stop(signum: int, frame: object) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        server.should_exit = True

    previous = {
        sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _url(config: AgentConfig, port: int) -> str:
    scheme = "https" if config.api.tls_cert else "http"
    host = f"[{config.api.host}]" if ":" in config.api.host else config.api.host
    return f"{scheme}://{host}:{port}"


def _write_runtime_file(config: AgentConfig, port: int) -> None:
    """Record the pid and URL, so tools and tests find an agent on port 0."""
    path: Path = config.data_dir / RUNTIME_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"pid": os.getpid(), "port": port, "url": _url(config, port)})
    )
    os.replace(tmp, path)
