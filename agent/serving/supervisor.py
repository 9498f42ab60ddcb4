"""Start, watch and restart the serving worker process.

::

    idle ──> starting ──> running ──> backoff ──> starting ...
                │            │           └──> failed   (too many crashes)
                └────────────┴──> backoff
    every state but stopped ──> stopping ──> stopped

The worker starts once the store records a deployment (at agent start,
or when the first release reaches canary or is deployed), so an agent
that serves nothing opens no serving port. A worker that exits on its
own is restarted after ``restart_backoff_seconds``, doubling with each
crash up to ``restart_backoff_max_seconds``. More than ``max_restarts``
crashes within ``restart_window_seconds`` leave it stopped in ``failed``
with a critical alert. A restart keeps the port the first worker bound,
which matters when ``serving.port`` is 0.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.serving.spec import LOG_FILE, SPEC_FILE, WorkerSpec, read_runtime
from store import Store, alerts
from store import deployments as deployment_rows

logger = logging.getLogger(__name__)

WORKER_MODULE = "agent.serving.worker"
POLL_SECONDS = 0.1


class WorkerState(enum.StrEnum):
    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.IDLE: frozenset({WorkerState.STARTING, WorkerState.STOPPING}),
    WorkerState.STARTING: frozenset(
        {
            WorkerState.RUNNING,
            WorkerState.BACKOFF,
            WorkerState.FAILED,
            WorkerState.STOPPING,
        }
    ),
    WorkerState.RUNNING: frozenset(
        {WorkerState.BACKOFF, WorkerState.FAILED, WorkerState.STOPPING}
    ),
    WorkerState.BACKOFF: frozenset(
        {WorkerState.STARTING, WorkerState.FAILED, WorkerState.STOPPING}
    ),
    WorkerState.FAILED: frozenset({WorkerState.STOPPING}),
    WorkerState.STOPPING: frozenset({WorkerState.STOPPED}),
    WorkerState.STOPPED: frozenset(),
}


class InvalidWorkerTransition(RuntimeError):
    def __init__(self, current: WorkerState, target: WorkerState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none"
        super().__init__(
            f"The serving worker cannot go from {current} to {target}; from {current} "
            f"it may go to: {allowed}."
        )


class WorkerSupervisor:
    """The one serving worker of an agent.

    Args:
        store: the agent's store, read to decide when to start.
        config: ``[serving]`` and the data directory are read.
        python: the interpreter that runs the worker. Default: this one.
    """

    def __init__(
        self, store: Store, config: AgentConfig, *, python: str = sys.executable
    ) -> None:
        self.store = store
        self.config = config
        self.python = python
        self.state = WorkerState.IDLE
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.url: str | None = None
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.started_at: float | None = None
        self._crashes: deque[float] = deque()
        self._restart_at = 0.0
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def directory(self) -> Path:
        return self.config.data_dir / "serving"

    # Lifecycle.

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._end_orphan()
        self._thread = threading.Thread(
            target=self._loop, name="serving-supervisor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker (SIGTERM, then SIGKILL after the grace period)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self.state != WorkerState.STOPPED:
                self._transition(WorkerState.STOPPING)
                self._end_process()
                self._transition(WorkerState.STOPPED)

    def wake(self) -> None:
        """Check for work now, e.g. after a deployment changed."""
        self._wake.set()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "state": self.state.value,
                "pid": self.process.pid if self.process else None,
                "port": self.port,
                "url": self.url,
                "restarts": self.restarts,
                "crashes_in_window": len(self._crashes),
                "last_exit_code": self.last_exit_code,
                "started_at": self.started_at,
                "log_path": str(self.directory / LOG_FILE),
            }

    # The loop.

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._lock:
                    self._step()
            except Exception:
                logger.exception("the serving supervisor failed a step; retrying")
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def _step(self) -> None:
        if self._stopping.is_set():
            return
        if self.state == WorkerState.IDLE and self._has_deployment():
            self._spawn()
        elif self.state in (WorkerState.STARTING, WorkerState.RUNNING):
            self._watch()
        elif self.state == WorkerState.BACKOFF and time.monotonic() >= self._restart_at:
            self._spawn()

    def _has_deployment(self) -> bool:
        if not self.config.serving.enabled:
            return False
        return any(
            row["stable_version"] is not None or row["canary_version"] is not None
            for row in deployment_rows.list_deployments(self.store.db, limit=1_000_000)
        )

    def _spawn(self) -> None:
        self._transition(WorkerState.STARTING)
        (self.config.data_dir / "serving.json").unlink(missing_ok=True)
        spec_path = self.directory / SPEC_FILE
        WorkerSpec.from_config(self.config, port=self.port).write(spec_path)
        with (self.directory / LOG_FILE).open("ab") as log:
            self.process = subprocess.Popen(
                [self.python, "-m", WORKER_MODULE, "--spec", str(spec_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        self.started_at = time.time()
        logger.info(
            "serving worker starting (pid %s, log %s)",
            self.process.pid,
            self.directory / LOG_FILE,
        )

    def _watch(self) -> None:
        code = self.process.poll()
        if code is not None:
            self._crashed(code)
            return
        if self.state == WorkerState.STARTING:
            runtime = read_runtime(self.config.data_dir)
            if runtime is not None and runtime.get("pid") == self.process.pid:
                self.port, self.url = runtime["port"], runtime["url"]
                self._transition(WorkerState.RUNNING)
                logger.info("serving worker running at %s", self.url)

    def _crashed(self, code: int) -> None:
        self.last_exit_code = code
        now = time.monotonic()
        self._crashes.append(now)
        window = self.config.serving.restart_window_seconds
        while self._crashes and self._crashes[0] < now - window:
            self._crashes.popleft()
        if len(self._crashes) > self.config.serving.max_restarts:
            self._give_up(code)
            return
        delay = min(
            self.config.serving.restart_backoff_seconds * 2 ** (len(self._crashes) - 1),
            self.config.serving.restart_backoff_max_seconds,
        )
        self._restart_at = now + delay
        self.restarts += 1
        self._transition(WorkerState.BACKOFF)
        logger.warning(
            "serving worker exited with status %s; restart %s in %.2f s (crash %s of "
            "at most %s within %s s)",
            code,
            self.restarts,
            delay,
            len(self._crashes),
            self.config.serving.max_restarts,
            window,
        )

    def _give_up(self, code: int) -> None:
        self._transition(WorkerState.FAILED)
        serving = self.config.serving
        message = (
            f"The serving worker crashed {len(self._crashes)} times within "
            f"{serving.restart_window_seconds:.0f} s (last exit status {code}) and is "
            f"not restarted; nothing is served. See {self.directory / LOG_FILE}, fix "
            "the cause and restart the agent."
        )
        logger.error("%s", message)
        with self.store.write() as db:
            alerts.raise_alert(
                db,
                kind="serving_worker_failed",
                severity="critical",
                source="serving",
                message=message,
            )

    def _transition(self, target: WorkerState) -> None:
        if target not in TRANSITIONS[self.state]:
            raise InvalidWorkerTransition(self.state, target)
        self.state = target

    # Ending processes.

    def _end_process(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(self.config.serving.stop_grace_seconds)
        except subprocess.TimeoutExpired:
            logger.warning(
                "serving worker %s ignored SIGTERM for %s s; killing its process group",
                process.pid,
                self.config.serving.stop_grace_seconds,
            )
            _kill_group(process.pid)
            process.wait()
        logger.info("serving worker stopped (exit status %s)", process.returncode)

    def _end_orphan(self) -> None:
        """End a worker left running by an agent that was killed."""
        runtime = read_runtime(self.config.data_dir)
        if runtime is None or not _is_our_worker(runtime.get("pid"), self.directory):
            return
        pid = runtime["pid"]
        logger.warning("ending serving worker %s left by a previous agent", pid)
        _kill_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.serving.stop_grace_seconds
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            _kill_group(pid)


def _is_our_worker(pid: Any, directory: Path) -> bool:
    import psutil

    if not isinstance(pid, int):
        return False
    try:
        command = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return WORKER_MODULE in command and str(directory / SPEC_FILE) in command


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill_group(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
