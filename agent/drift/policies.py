"""Hooks on drift events, and the two built-in ones: retraining, canary abort.

The drift service calls every registered hook with each event after the
event and its alert are committed, on the drift thread, so a hook must
return quickly. An exception in a hook is logged and does not stop the
other hooks or the monitors.

Both built-in policies act through callables the daemon passes in,
because the training service and the release controller own the
actions:

- ``RetrainOnDrift`` calls ``retrain(model, reason)``, which fires the
  model's training job (``RunManager.fire`` with ``trigger="drift"``, audited
  with the reason), at once or,
  with ``retrain_min_labels``, once that many feedback labels have arrived
  after the event. The drift thread calls its ``poll`` for that.
- ``AbortCanaryOnDrift`` calls ``abort_canary(model, reason)``
  (``ReleaseController.abort_canary``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from agent.config import AgentConfig
from store import Store, settings

logger = logging.getLogger(__name__)

# The settings table keeps the last drift-fired training time per model,
# so that the cooldown applies across agent restarts.
RETRAIN_SETTING_PREFIX = "drift.retrain_fired_at."
# A retrain waiting to start: {"event": id, "signal": name, "version": n,
# "after_feedback_id": id, "since": ts, "retry_at": ts}.
PENDING_SETTING_PREFIX = "drift.retrain_pending."
# Seconds before a retrain whose fire was skipped (another run of the model
# was active) or failed is tried again.
RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class DriftEvent:
    """A committed drift event, as hooks receive it.

    Attributes:
        id: the row id in ``drift_events``.
        alert_id: the alert it raised.
        model: the model's name.
        version: the version whose traffic drifted.
        role: ``stable`` or ``canary``.
        signal: ``feature:NAME``, ``prediction`` or ``error``.
        detector: the detector plugin that found the change.
        sample_index: values the monitor had accepted when it confirmed it.
        ts: Unix seconds of the confirmation.
        stats: the statistics before and after the change (see docs/drift.md).
    """

    id: int
    alert_id: int
    model: str
    version: int
    role: str
    signal: str
    detector: str
    sample_index: int
    ts: float
    stats: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class DriftHook(Protocol):
    """Anything the drift service calls with each committed drift event.

    A hook may also have a ``poll()`` method, which the drift thread calls
    every ``[drift] poll_seconds``.
    """

    def on_drift(self, event: DriftEvent) -> None: ...


class RetrainOnDrift:
    """Fire a model's training job when its stable version drifts.

    Only models with ``monitoring.retrain_on_drift = true`` are retrained,
    at most once per ``monitoring.retrain_cooldown_seconds``. With
    ``monitoring.retrain_min_labels`` above 0 the run waits until that many
    feedback labels of the model have arrived after the event: a run fired
    at the event would train on almost no rows of the changed traffic. The
    wait is kept in ``settings``, so it survives a restart, and further
    events while it lasts are ignored. It ends only when a run is queued:
    a fire skipped because another run of the model is active, or one that
    failed, is tried again ``RETRY_SECONDS`` later, and the cooldown starts
    with the run that was queued.

    Args:
        store: the agent's store; the last fire time and a waiting retrain
            are kept in ``settings``.
        config: the agent configuration.
        retrain: fires the training job of the model it is given, with the
            reason for the audit log.
        clock: Unix seconds.
    """

    def __init__(
        self,
        store: Store,
        config: AgentConfig,
        retrain: Callable[[str, str], Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config
        self.retrain = retrain
        self.clock = clock

    def on_drift(self, event: DriftEvent) -> None:
        model = self.config.model(event.model)
        if event.role != "stable" or model is None:
            return
        if not model.monitoring.retrain_on_drift:
            return
        if self._pending(event.model) is not None:
            logger.info(
                "drift event %s on %s: a retrain already waits to start",
                event.id,
                event.model,
            )
            return
        now = self.clock()
        last = self._setting(RETRAIN_SETTING_PREFIX + event.model)
        cooldown = model.monitoring.retrain_cooldown_seconds
        if last is not None and now - float(last) < cooldown:
            logger.info(
                "drift event %s on %s: not retraining, the last drift-fired run "
                "was %.0f s ago (cooldown %.0f s)",
                event.id,
                event.model,
                now - float(last),
                cooldown,
            )
            return
        (after,) = self.store.db.conn.execute(
            "SELECT COALESCE(MAX(id), 0) FROM feedback"
        ).fetchone()
        pending = {
            "event": event.id,
            "signal": event.signal,
            "version": event.version,
            "after_feedback_id": after,
            "since": now,
            "retry_at": 0.0,
        }
        self._set(PENDING_SETTING_PREFIX + event.model, json.dumps(pending))
        if model.monitoring.retrain_min_labels:
            logger.info(
                "drift event %s on %s: its training job fires once %s feedback "
                "labels have arrived",
                event.id,
                event.model,
                model.monitoring.retrain_min_labels,
            )
        self._try(event.model, pending)

    def poll(self) -> None:
        """Fire each waiting retrain whose model has received enough labels."""
        waiting = settings.with_prefix(self.store.db, PENDING_SETTING_PREFIX)
        for key, value in waiting:
            self._try(key[len(PENDING_SETTING_PREFIX) :], json.loads(value))

    def _try(self, name: str, pending: dict[str, Any]) -> None:
        """Fire a waiting retrain if it may start; keep it waiting if not.

        It is cleared only once a run is queued, so a fire skipped because
        another run of the model is active, or a failed one, is retried
        after ``RETRY_SECONDS``.
        """
        key = PENDING_SETTING_PREFIX + name
        model = self.config.model(name)
        if model is None or not model.monitoring.retrain_on_drift:
            logger.warning(
                "dropped the retrain of %s that drift event %s started: the model "
                "is no longer configured with retrain_on_drift = true",
                name,
                pending["event"],
            )
            self._set(key, None)
            return
        if self.clock() < pending.get("retry_at", 0.0):
            return
        (labels,) = self.store.db.conn.execute(
            "SELECT COUNT(*) FROM feedback WHERE model = ? AND id > ?",
            (name, pending["after_feedback_id"]),
        ).fetchone()
        if labels < model.monitoring.retrain_min_labels:
            return
        cause = f"Drift event {pending['event']} on {pending['signal']}"
        if model.monitoring.retrain_min_labels:
            cause += f", then {labels} feedback labels of the traffic after it."
        else:
            cause += f" of version {pending.get('version', '?')}."
        try:
            outcome = self.retrain(name, cause)
        except Exception:
            logger.exception(
                "%s Firing the training job of %s failed; retrying in %s s.",
                cause,
                name,
                RETRY_SECONDS,
            )
            outcome = None
        else:
            # The daemon's retrain returns a FireRecord; a plain callable
            # that returns nothing has started its run.
            if getattr(outcome, "outcome", "started") == "started":
                with self.store.write() as db:
                    settings.delete(db, key)
                    settings.put(db, RETRAIN_SETTING_PREFIX + name, repr(self.clock()))
                logger.info("%s It fired the training job of %s.", cause, name)
                return
            logger.warning(
                "%s The training job of %s did not start (%s: %s); retrying in %s s.",
                cause,
                name,
                outcome.outcome,
                getattr(outcome, "detail", ""),
                RETRY_SECONDS,
            )
        pending["retry_at"] = self.clock() + RETRY_SECONDS
        self._set(key, json.dumps(pending))

    def _pending(self, model: str) -> dict[str, Any] | None:
        value = self._setting(PENDING_SETTING_PREFIX + model)
        return None if value is None else json.loads(value)

    def _setting(self, key: str) -> str | None:
        return settings.get(self.store.db, key)

    def _set(self, key: str, value: str | None) -> None:
        with self.store.write() as db:
            if value is None:
                settings.delete(db, key)
            else:
                settings.put(db, key, value)


class AbortCanaryOnDrift:
    """Abort a canary whose own traffic drifts while stable's does not.

    A drift on both versions' monitors of the same signal lies in the
    traffic, not in the canary, so the canary is kept.

    Args:
        config: the agent configuration; ``monitoring.abort_canary_on_drift``
            is read per model.
        abort_canary: ends the model's canary; takes the model and a reason.
        is_drifting: returns whether a model's monitor of a signal in a
            role is drifting now.
    """

    def __init__(
        self,
        config: AgentConfig,
        abort_canary: Callable[[str, str], Any],
        is_drifting: Callable[[str, str, str], bool],
    ) -> None:
        self.config = config
        self.abort_canary = abort_canary
        self.is_drifting = is_drifting

    def on_drift(self, event: DriftEvent) -> None:
        model = self.config.model(event.model)
        if event.role != "canary" or model is None:
            return
        if not model.monitoring.abort_canary_on_drift:
            return
        if self.is_drifting(event.model, "stable", event.signal):
            logger.info(
                "drift event %s: %s drifts on the stable version of %s too, so the "
                "canary is kept",
                event.id,
                event.signal,
                event.model,
            )
            return
        reason = (
            f"Drift event {event.id}: {event.signal} of the canary version "
            f"{event.version} drifted while the stable version's did not."
        )
        outcome = self.abort_canary(event.model, reason)
        logger.info(
            "drift event %s: canary of %s aborted (%s)",
            event.id,
            event.model,
            "done" if outcome is not None else "no canary was running",
        )
