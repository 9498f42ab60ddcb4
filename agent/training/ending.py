"""End runs whose worker exited: decide the end state, register, store it.

A run stays tracked, in ``active`` or ``registering``, until its end state
is stored, so a failure to store is retried at the next supervisor check
instead of leaving the run ``running`` forever. An error while deciding
how a run ended ends it ``failed`` with that error.

A run that exited with status 0 moves from ``active`` to ``registering``
and is registered on a ``Registrar`` thread: hashing its artifact and
evaluating gates happen outside the supervisor's lock, while the run keeps
its slot.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from agent.config import AgentConfig
from agent.training import launcher, outcomes
from agent.training.active_run import ActiveRun
from agent.training.outcomes import cancel_text
from agent.training.registrar import Registrar
from agent.training.registry import (
    RegistrationCancelled,
    RegistrationError,
    register_run,
)
from agent.training.throttle import LogThrottle
from store import Store, alerts
from store import runs as run_rows
from store.runs import InvalidTransitionError, RunState

logger = logging.getLogger(__name__)


class RunEnding:
    """The end of runs for one ``RunManager``, sharing its lock and run tables.

    Args:
        store: the agent's store.
        config: the agent configuration; ``models`` is read to register.
        lock: the manager's lock; every method but the registrar's work is
            called with it held.
        active: runs with a worker, by run id.
        registering: runs being registered, by run id.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        store: Store,
        config: AgentConfig,
        lock: threading.RLock,
        active: dict[int, ActiveRun],
        registering: dict[int, ActiveRun],
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self._lock = lock
        self._active = active
        self._registering = registering
        self._registered = threading.Condition(lock)
        self._registrar = Registrar(
            self._complete_registration, config.training.max_concurrent_runs
        )
        self._end_errors = LogThrottle(clock=clock)

    def stop(self) -> None:
        """Let the registrar threads end once their registrations are done."""
        self._registrar.stop()

    def finish(self, active: ActiveRun, returncode: int) -> None:
        """End a run whose worker exited: register it, or store its end state.

        Called at each check until the end state is stored, so a run is
        never dropped with its state left ``running``.
        """
        if active.end is None:
            active.returncode = returncode
            self._end_leftovers(active)
            active.end = self._decide_end(active, returncode)
        state, error = active.end
        if state == RunState.SUCCEEDED:
            self._start_registration(active)
        else:
            self._store_end(active, state, error)

    def _end_leftovers(self, active: ActiveRun) -> None:
        """SIGKILL what the exited worker left, in its process group or not."""
        try:
            active.signal(signal.SIGKILL)
        except Exception:
            logger.exception(
                "ending the processes left by run %s failed", active.run_id
            )

    def _decide_end(
        self, active: ActiveRun, returncode: int
    ) -> tuple[RunState, str | None]:
        try:
            active.read_events()  # the last lines, written as the worker exited
            return self.outcome(active, returncode)
        except Exception as error:
            logger.exception(
                "ending run %s of model %s failed; marking it failed",
                active.run_id,
                active.model,
            )
            return (
                RunState.FAILED,
                f"The agent failed while ending the run: {type(error).__name__}: "
                f"{error}",
            )

    def outcome(
        self, active: ActiveRun, returncode: int
    ) -> tuple[RunState, str | None]:
        return outcomes.decide(
            active.stop_reason,
            active.stop_detail,
            returncode,
            active.error_summary,
            active.memory_limit_bytes,
        )

    def _store_end(
        self,
        active: ActiveRun,
        state: RunState,
        error: str | None,
        version: dict[str, Any] | None = None,
    ) -> None:
        """Store how the run ended and stop tracking it, or keep it to retry.

        ``version`` is the registered version, whose registration already
        stored the ``succeeded`` state.
        """
        if version is None:
            try:
                self.record_end(active, state, active.returncode, error)
            except InvalidTransitionError as stored:
                # Only this manager ends running runs, so this is unexpected.
                # The run already has an end state, and a retry cannot change it.
                logger.warning(
                    "run %s already left running; not storing %s: %s",
                    active.run_id,
                    state.value,
                    stored,
                )
            except Exception:
                if self._end_errors.allow(active.run_id) is not None:
                    logger.exception(
                        "storing the end of run %s failed; retrying at the next check",
                        active.run_id,
                    )
                self._track_again(active)
                return
            launcher.remove_artifact_dir(active.paths)
        self._active.pop(active.run_id, None)
        self._registering.pop(active.run_id, None)
        self._end_errors.forget(active.run_id)
        self._registered.notify_all()
        ended = f"version {version['number']}" if version else error
        launcher.append_log(
            active.paths, f"run {active.run_id} ended {state.value}: {ended}"
        )
        logger.info(
            "run %s of model %s ended %s: %s",
            active.run_id,
            active.model,
            state.value,
            ended,
        )

    def _track_again(self, active: ActiveRun) -> None:
        """Hand a run whose end is not stored back to the supervisor, to retry."""
        if self._registering.pop(active.run_id, None) is not None:
            self._active[active.run_id] = active
            self._registered.notify_all()

    # Registration.

    def _start_registration(self, active: ActiveRun) -> None:
        if active.dirty:
            # Registration stores the metrics but not the progress.
            active.flush(self.store, self.clock())
        self._active.pop(active.run_id, None)
        self._registering[active.run_id] = active
        self._registrar.submit(active)

    def _complete_registration(self, active: ActiveRun) -> None:
        """Register a run on a registrar thread, then store how it ended."""
        version, error = self._register(active)
        with self._lock:
            if version is not None:
                state = RunState.SUCCEEDED
            elif isinstance(error, RegistrationCancelled):
                state = RunState.CANCELLED
                error = active.stop_detail or cancel_text(
                    error.requested_by or "an operator", None, started=True
                )
            else:
                state = RunState.FAILED
            active.end = (state, error)
            self._store_end(active, state, error, version)

    def _register(
        self, active: ActiveRun
    ) -> tuple[dict[str, Any] | None, RegistrationCancelled | str | None]:
        """Return the registered version, or None and why nothing was registered.

        The reason is the RegistrationCancelled error, or the text for the
        run's error.
        """
        try:
            model = self.config.model(active.model)
            if model is None:
                return (
                    None,
                    f"Model {active.model!r} is no longer in agent.toml; nothing was "
                    "registered.",
                )
            run = run_rows.get_run(self.store.db, active.run_id)
            version = register_run(self.store, self.config, model, run, active.paths)
        except RegistrationCancelled as error:
            logger.info("%s", error)
            return None, error
        except (RegistrationError, InvalidTransitionError) as error:
            logger.warning("run %s did not register: %s", active.run_id, error)
            return None, f"Registration failed: {error}"
        except Exception as error:
            logger.exception("registering run %s failed", active.run_id)
            return None, f"Registration failed: {type(error).__name__}: {error}"
        return version, None

    def wait_for_registrations(self, timeout_seconds: float) -> None:
        """Wait up to ``timeout_seconds``, with the lock released, for registrations."""
        if not self._registered.wait_for(
            lambda: not self._registering, timeout=timeout_seconds
        ):
            logger.warning(
                "runs %s were still registering when the supervisor stopped; they "
                "are marked interrupted at the next start",
                sorted(self._registering),
            )

    def record_end(
        self, active: ActiveRun, state: RunState, returncode: int, error: str | None
    ) -> None:
        with self.store.write() as db:
            run_rows.transition(
                db,
                active.run_id,
                state,
                exit_code=returncode,
                error=error,
                progress_json=active.progress,
                metrics_json=active.metrics or None,
                data_sha256=active.data_sha256,
            )
            if state in (RunState.FAILED, RunState.TIMED_OUT):
                alerts.raise_alert(
                    db,
                    kind=f"run_{state.value}",
                    severity="warning",
                    source=f"run/{active.run_id}",
                    message=f"Run {active.run_id} of model {active.model} "
                    f"{state.value}: {error}",
                )
