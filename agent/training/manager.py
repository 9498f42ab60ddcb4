"""Queue, start, supervise and end training runs.

``RunManager`` owns every run of this agent. Scheduled fires and operators
queue runs in the store. One supervisor thread starts a queued run when a
slot and its GPUs are free. It then follows the worker's events into the
store, enforces the wall-clock budget, carries out cancels and records
how the run ended. A run is ended with SIGTERM to its process group, then
SIGKILL after ``training.cancel_grace_seconds``.

How a run ends, registration included, is ``agent.training.ending``'s
part; a run being registered keeps its slot until its end is stored.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.config import AgentConfig, ModelSection
from agent.training import launcher
from agent.training.active_run import ActiveRun
from agent.training.ending import RunEnding
from agent.training.errors import RunConflict, RunNotActive
from agent.training.events import EventReader
from agent.training.launcher import RunPaths
from agent.training.outcomes import (
    STOP_CANCEL,
    STOP_GPU_LOST,
    STOP_SHUTDOWN,
    STOP_TIMEOUT,
    cancel_text,
    sentence,
)
from agent.training.placement import (
    GpuInventory,
    NoGpus,
    choose_gpus,
    refusal,
    unhealthy,
)
from agent.training.throttle import LogThrottle
from store import Store, alerts, audit
from store import jobs as job_rows
from store import runs as run_rows
from store.runs import InvalidTransitionError, RunState

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1
# Progress reaches the store at most this often per run, so a recipe that
# reports every step does not turn into a write per step.
FLUSH_SECONDS = 0.5
GPU_CHECK_SECONDS = 2.0
# How long ``stop`` waits for registrations in progress; a run still
# registering after that is marked interrupted at the next start.
REGISTRATION_STOP_SECONDS = 30.0


class RunManager:
    """Owner of every run of one agent: queueing, supervision and cancels.

    Args:
        store: the agent's store.
        config: the agent configuration; ``models`` and ``training`` are read.
        inventory: GPU health, e.g. ``agent.telemetry.GpuProbe``. Default:
            none, so only runs without GPUs start.
        python: the interpreter that runs workers. Default: this one.
        clock: monotonic seconds, for budgets and grace periods.
    """

    def __init__(
        self,
        store: Store,
        config: AgentConfig,
        inventory: GpuInventory | None = None,
        *,
        python: str = sys.executable,
        clock: Callable[[], float] = time.monotonic,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.store = store
        self.config = config
        self.inventory: GpuInventory = inventory or NoGpus()
        self.python = python
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.supervisor_errors = 0
        self._active: dict[int, ActiveRun] = {}
        self._registering: dict[int, ActiveRun] = {}
        self._lock = threading.RLock()
        self._ending = RunEnding(
            store, config, self._lock, self._active, self._registering, clock
        )
        self._fire_warnings = LogThrottle(clock=clock)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # Lifecycle.

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="run-supervisor", daemon=True
        )
        self._thread.start()
        logger.info("run supervisor started (max %s concurrent runs)", self._max_runs())

    def stop(self) -> None:
        """End every active run (state ``interrupted``) and stop the supervisor.

        Registrations in progress get ``REGISTRATION_STOP_SECONDS`` to finish.
        """
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            for active in list(self._active.values()):
                if active.returncode is None and active.process.poll() is None:
                    self._request_stop(active, STOP_SHUTDOWN, "the agent is stopping")
            self._wait_for_active(self.config.training.cancel_grace_seconds)
            self._interrupt_queued()
            self._ending.wait_for_registrations(REGISTRATION_STOP_SECONDS)
        self._ending.stop()
        logger.info("run supervisor stopped")

    def wake(self) -> None:
        self._wake.set()

    # Triggers.

    def trigger(
        self, job: str, *, actor: str, reason: str | None = None
    ) -> dict[str, Any]:
        """Queue a run by hand; the trigger and its audit entry share one transaction.

        Raises:
            KeyError: no configured model has this job.
            RunConflict: the model already has a queued or running run.
            PlacementRefused: the run needs GPUs and none may take work.
        """
        model = self._model(job)
        with self.store.write() as db:
            active = run_rows.active_run_of_model(db, model.name)
            if active is not None:
                raise RunConflict(model.name, active["id"], active["state"])
            refused = refusal(self.inventory, model.resources.gpus)
            if refused is not None:
                raise refused
            run_id = self._queue(db, model, trigger="manual", requested_by=actor)
            job_rows.record_fire(
                db,
                job,
                "started",
                scheduled_at=None,
                run_id=run_id,
                detail=f"triggered by {actor}",
            )
            audit.append_entry(
                db,
                actor=actor,
                action="job.trigger",
                target=f"job/{job}",
                reason=reason,
                after={"run_id": run_id, "state": RunState.QUEUED.value},
            )
            run = run_rows.get_run(db, run_id)
        logger.info("run %s of model %s queued by %s", run_id, model.name, actor)
        self._wake.set()
        return run

    def fire(
        self,
        job: str,
        *,
        scheduled_at: float | None,
        trigger: str = "schedule",
        next_fire_at: float | None = None,
        update_next_fire: bool = False,
        actor: str | None = None,
        reason: str | None = None,
    ) -> job_rows.FireRecord:
        """Record one fire of a job; queue a run unless it is skipped or refused.

        The fire, the queued run and the job's next fire time are written
        in one transaction, so a crash cannot queue a run without recording
        that the fire happened, nor the reverse. With ``actor``, a queued
        run also gets a ``job.trigger`` audit entry with ``reason``, in the
        same transaction (the drift monitor fires this way).
        """
        model = self._model(job)
        with self.store.write() as db:
            if update_next_fire:
                job_rows.set_next_fire(db, job, next_fire_at)
            active = run_rows.active_run_of_model(db, model.name)
            refused = refusal(self.inventory, model.resources.gpus)
            if active is not None:
                detail = (
                    f"run {active['id']} of model {model.name} was still "
                    f"{active['state']}"
                )
                record = job_rows.FireRecord("skipped", None, detail)
            elif refused is not None:
                record = job_rows.FireRecord("refused", None, refused.message)
                alerts.raise_alert(
                    db,
                    kind="run_refused",
                    severity="warning",
                    source=f"job/{job}",
                    message=refused.message,
                )
            else:
                run_id = self._queue(db, model, trigger=trigger, requested_by=actor)
                record = job_rows.FireRecord("started", run_id, f"{trigger} fire")
                if actor is not None:
                    audit.append_entry(
                        db,
                        actor=actor,
                        action="job.trigger",
                        target=f"job/{job}",
                        reason=reason,
                        after={
                            "run_id": run_id,
                            "state": RunState.QUEUED.value,
                            "trigger": trigger,
                        },
                    )
            job_rows.record_fire(
                db,
                job,
                record.outcome,
                scheduled_at=scheduled_at,
                run_id=record.run_id,
                detail=record.detail,
            )
        if record.outcome == "started":
            logger.info(
                "run %s of model %s queued by a %s fire",
                record.run_id,
                model.name,
                trigger,
            )
            self._wake.set()
        else:
            self._warn_fire(job, trigger, record)
        return record

    def cancel(
        self, run_id: int, *, actor: str, reason: str | None = None
    ) -> dict[str, Any]:
        """Cancel a queued run now, or have the supervisor end a running one.

        Raises:
            store.NotFoundError: no run has this id.
            RunNotActive: the run has already finished.
        """
        with self._lock:
            with self.store.write() as db:
                run = run_rows.get_run(db, run_id)
                if run["state"] == RunState.QUEUED:
                    run_rows.transition(
                        db,
                        run_id,
                        RunState.CANCELLED,
                        error=cancel_text(actor, reason, started=False),
                    )
                    self._audit_cancel(
                        db, run_id, actor, reason, after={"state": "cancelled"}
                    )
                elif run["state"] == RunState.RUNNING:
                    if run_rows.request_cancel(db, run_id, actor):
                        self._audit_cancel(
                            db,
                            run_id,
                            actor,
                            reason,
                            after={"cancel_requested_by": actor},
                        )
                else:
                    raise RunNotActive(run_id, run["state"])
            active = self._active.get(run_id) or self._registering.get(run_id)
            if active is not None and active.stop_reason is None:
                active.stop_reason = STOP_CANCEL
                active.stop_detail = cancel_text(actor, reason, started=True)
        logger.info("run %s cancel requested by %s", run_id, actor)
        self._wake.set()
        return run_rows.get_run(self.store.db, run_id)

    # The supervisor.

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._lock:
                    self._tick()
            except Exception:
                self.supervisor_errors += 1
                logger.exception(
                    "run supervisor step failed (%s so far)", self.supervisor_errors
                )
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _tick(self) -> None:
        for active in list(self._active.values()):
            self._supervise(active)
        if not self._stopping.is_set():
            self._start_queued()

    def _supervise(self, active: ActiveRun) -> None:
        active.read_events()
        returncode = active.process.poll()
        if returncode is not None:
            self._ending.finish(active, returncode)
            return
        now = self.clock()
        if active.stop_reason is not None and active.term_sent_at is None:
            self._send_term(active)
        elif (
            active.stop_reason is None and now - active.started >= active.budget_seconds
        ):
            self._request_stop(
                active,
                STOP_TIMEOUT,
                f"the run exceeded its wall-clock budget of {active.budget_seconds:g} "
                "s",
            )
        elif active.gpus and now - active.gpus_checked_at >= GPU_CHECK_SECONDS:
            active.gpus_checked_at = now
            lost = unhealthy(self.inventory, active.gpus)
            if lost:
                self._request_stop(
                    active,
                    STOP_GPU_LOST,
                    f"GPU {', '.join(map(str, lost))} assigned to the run is lost or "
                    "unreadable",
                )
        if (
            active.term_sent_at is not None
            and not active.kill_sent
            and now - active.term_sent_at >= self.config.training.cancel_grace_seconds
        ):
            launcher.append_log(
                active.paths,
                "The process group outlived the grace period of "
                f"{self.config.training.cancel_grace_seconds:g} s. Sending SIGKILL.",
            )
            active.signal(signal.SIGKILL)
            active.kill_sent = True
        if active.dirty and now - active.flushed_at >= FLUSH_SECONDS:
            active.flush(self.store, now)

    def _request_stop(self, active: ActiveRun, reason: str, detail: str) -> None:
        if active.stop_reason is None:
            active.stop_reason = reason
            active.stop_detail = detail
        if active.term_sent_at is None:
            self._send_term(active)

    def _send_term(self, active: ActiveRun) -> None:
        active.strays = active.find_strays()
        target = f"process group {active.pgid}"
        if active.strays:
            pids = ", ".join(str(process.pid) for process in active.strays)
            target += f" and to the processes {pids}, which left that group"
        launcher.append_log(
            active.paths,
            f"{sentence(active.stop_detail or '')} Sending SIGTERM to {target}.",
        )
        launcher.signal_group(active.pgid, signal.SIGTERM)
        launcher.signal_processes(active.strays, signal.SIGTERM)
        active.term_sent_at = self.clock()

    def _start_queued(self) -> None:
        free_slots = self._max_runs() - len(self._active) - len(self._registering)
        if free_slots <= 0:
            return
        queued = run_rows.list_runs(
            self.store.db, states=(RunState.QUEUED.value,), limit=1000
        )
        for run in sorted(queued, key=lambda row: row["id"]):
            if free_slots <= 0:
                return
            if self._try_launch(run):
                free_slots -= 1

    def _try_launch(self, run: dict[str, Any]) -> bool:
        gpus_needed = run["spec"]["resources"]["gpus"]
        refused = refusal(self.inventory, gpus_needed)
        if refused is not None:
            self._fail_queued(run, refused.message)
            return False
        busy = [index for active in self._active.values() for index in active.gpus]
        gpus = choose_gpus(self.inventory, gpus_needed, busy)
        if gpus is None:
            return False  # waits for a GPU to free up
        self._launch(run, gpus)
        return True

    def _launch(self, run: dict[str, Any], gpus: list[int]) -> None:
        run_id = run["id"]
        paths = RunPaths.for_run(self.config.data_dir, run["model"], run_id)
        process = self._spawn(run, paths, gpus)
        if process is None or not self._mark_running(run_id, process, paths, gpus):
            return

        # Wake the supervisor the moment the worker exits, rather than at
        # its next poll.
        threading.Thread(
            target=self._wake_on_exit,
            args=(process,),
            name=f"run-{run_id}-wait",
            daemon=True,
        ).start()
        self._active[run_id] = ActiveRun(
            run_id=run_id,
            model=run["model"],
            process=process,
            paths=paths,
            gpus=gpus,
            started=self.clock(),
            budget_seconds=run["spec"]["resources"]["budget_seconds"],
            events=EventReader(paths.events),
            memory_limit_bytes=run["spec"]["resources"].get("memory_limit_bytes"),
        )
        logger.info(
            "run %s of model %s started (pid %s, gpus %s)",
            run_id,
            run["model"],
            process.pid,
            gpus or "none",
        )

    def _spawn(
        self, run: dict[str, Any], paths: RunPaths, gpus: list[int]
    ) -> subprocess.Popen | None:
        """Start the worker; on failure mark the run failed and return None."""
        launcher.write_spec(paths, self._worker_spec(run, paths))
        where = f"GPUs {','.join(map(str, gpus))}" if gpus else "the CPU"
        launcher.append_log(
            paths, f"run {run['id']} of model {run['model']} starting on {where}"
        )
        command = launcher.worker_command(paths.spec, len(gpus), self.python)
        environment = launcher.worker_environment(
            os.environ, run["id"], gpus, paths.run_dir
        )
        try:
            return launcher.spawn(command, environment, paths)
        except OSError as error:
            self._fail_queued(run, f"The worker could not be started: {error}")
            return None

    def _mark_running(
        self, run_id: int, process: subprocess.Popen, paths: RunPaths, gpus: list[int]
    ) -> bool:
        """Record the worker as running; kill it, return False, if it was cancelled."""
        try:
            with self.store.write() as db:
                run_rows.transition(
                    db,
                    run_id,
                    RunState.RUNNING,
                    started_at=time.time(),
                    pid=process.pid,
                    pgid=process.pid,
                    gpus=gpus,
                    log_path=str(paths.log),
                )
        except InvalidTransitionError:
            # Cancelled between the queue read and now: end what was started.
            logger.info(
                "run %s was cancelled while it started; ending its worker", run_id
            )
            launcher.signal_group(process.pid, signal.SIGKILL)
            process.wait()
            return False
        return True

    def _wake_on_exit(self, process: subprocess.Popen) -> None:
        process.wait()
        self._wake.set()

    def _fail_queued(self, run: dict[str, Any], message: str) -> None:
        with self.store.write() as db:
            run_rows.transition(db, run["id"], RunState.FAILED, error=message)
            alerts.raise_alert(
                db,
                kind="run_failed",
                severity="warning",
                source=f"run/{run['id']}",
                message=f"Run {run['id']} of model {run['model']} failed: {message}",
            )
        logger.warning(
            "run %s of model %s failed before starting: %s",
            run["id"],
            run["model"],
            message,
        )

    def _interrupt_queued(self) -> None:
        with self.store.write() as db:
            for run in run_rows.list_runs(
                db, states=(RunState.QUEUED.value,), limit=10_000
            ):
                run_rows.transition(
                    db,
                    run["id"],
                    RunState.INTERRUPTED,
                    error="The agent stopped before this run started.",
                )

    def _wait_for_active(self, grace_seconds: float) -> None:
        deadline = self.clock() + grace_seconds
        for active in list(self._active.values()):
            remaining = max(0.0, deadline - self.clock())
            try:
                returncode = active.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                active.signal(signal.SIGKILL)
                returncode = active.process.wait()
            try:
                self._ending.finish(active, returncode)
            except Exception:
                logger.exception("ending run %s at shutdown failed", active.run_id)

    # Helpers.

    def _queue(
        self, db, model: ModelSection, *, trigger: str, requested_by: str | None
    ) -> int:
        spec = run_spec(self.config, model)
        return run_rows.create_run(
            db,
            model=model.name,
            job=model.name,
            trigger=trigger,
            requested_by=requested_by,
            budget_seconds=model.resources.budget_seconds,
            spec=spec,
        )

    def _worker_spec(self, run: dict[str, Any], paths: RunPaths) -> dict[str, Any]:
        return {
            **run["spec"],
            "run_id": run["id"],
            "model": run["model"],
            "store_path": str(self.config.store_path),
            "artifact_dir": str(paths.artifact_dir),
            "events_path": str(paths.events),
            "result_path": str(paths.result),
        }

    def _audit_cancel(
        self, db, run_id: int, actor: str, reason: str | None, after: dict
    ) -> None:
        audit.append_entry(
            db,
            actor=actor,
            action="run.cancel",
            target=f"run/{run_id}",
            reason=reason,
            before={"state": "queued" if after.get("state") else "running"},
            after=after,
        )

    def _model(self, job: str) -> ModelSection:
        model = self.config.model(job)
        if model is None:
            raise KeyError(job)
        return model

    def _max_runs(self) -> int:
        return self.config.training.max_concurrent_runs

    def active_run_ids(self) -> list[int]:
        """Return the runs with a worker, or a registration, in progress."""
        with self._lock:
            return sorted({*self._active, *self._registering})

    def _warn_fire(self, job: str, trigger: str, record: job_rows.FireRecord) -> None:
        """Log a skipped or refused fire, at most once a minute per job and outcome.

        With a short interval and a long run, every fire is skipped, so a
        line per fire would flood the log.
        """
        suppressed = self._fire_warnings.allow((job, record.outcome))
        if suppressed is None:
            return
        repeats = ""
        if suppressed:
            repeats = (
                f" ({suppressed} more {record.outcome} fires of this job were not "
                f"logged in the last {self._fire_warnings.interval_seconds:g} s)"
            )
        logger.warning(
            "%s fire of job %s %s: %s%s",
            trigger,
            job,
            record.outcome,
            record.detail,
            repeats,
        )


def run_spec(config: AgentConfig, model: ModelSection) -> dict[str, Any]:
    """Return what a run of ``model`` trains, frozen when the run is queued."""
    return {
        "dataset": model.dataset.model_dump(mode="json"),
        "recipe": model.recipe.model_dump(mode="json"),
        "resources": model.resources.model_dump(mode="json"),
        "agent": config.agent.name,
        "region": config.agent.region,
    }
