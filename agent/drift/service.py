"""The drift service: monitors of every served model, off the request path.

``observe``, ``observe_error`` and ``on_predictions`` only put rows on a
bounded queue and return. One background thread takes them off in
batches, finds the monitor set of each model version and role, runs the
monitors, writes drift events with their alerts, calls the hooks, and
checkpoints monitor state to the store.

Overload: while more than ``drift.sample_above`` of ``drift.queue_rows``
rows wait, only one row in ``drift.sample_every`` is queued; when the
queue is full, none is. Every row left out is counted and shown on the
monitors it would have reached as ``skipped``.

Restart: monitor state (counts, status, the last ``history_rows``
transformed values) is written every ``drift.checkpoint_seconds`` and in
the same transaction as each drift event. A restarted agent replays the
stored values into fresh detectors, so a drift in progress stays in
progress and its event is not raised again. Values processed after the
last checkpoint are lost when the agent is killed.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent.config import AgentConfig
from agent.drift import rows
from agent.drift.monitor import Finding, MonitorStatus
from agent.drift.monitor_set import MonitorSet, feature_references
from agent.drift.policies import (
    AbortCanaryOnDrift,
    DriftEvent,
    DriftHook,
    RetrainOnDrift,
)
from store import Store, StoreError, alerts
from store import deployments as deployment_rows
from store import predictions as prediction_rows
from store import versions as version_rows

logger = logging.getLogger(__name__)

MAX_BATCH_ITEMS = 20_000
FEEDBACK_BATCH_ROWS = 5000
ROLES = ("stable", "canary")

# Queue items: (kind, model, version, role or None, payload).
_ROW = "row"
_ERROR = "error"


class DriftService:
    """Runs the drift monitors of every configured model.

    Args:
        store: the agent's store.
        config: the agent configuration: ``[drift]`` and each model's
            ``[models.monitoring]``.
        retrain: fires a model's training job; enables ``RetrainOnDrift``.
        abort_canary: ends a model's canary with a reason; enables
            ``AbortCanaryOnDrift``.
        read_feedback: read new feedback labels from the store for the
            error monitors. Default True.
    """

    def __init__(
        self,
        store: Store,
        config: AgentConfig,
        *,
        retrain: Callable[[str], Any] | None = None,
        abort_canary: Callable[[str, str], Any] | None = None,
        read_feedback: bool = True,
    ) -> None:
        self.store = store
        self.config = config
        self.settings = config.drift
        self.read_feedback = read_feedback
        self.unmonitored_rows: Counter[str] = Counter()
        self._queue: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queued_rows = 0
        self._busy = False
        self._sampled = 0
        self._skipped: Counter[tuple[str, int, str]] = Counter()
        self._sets: dict[tuple[str, str], MonitorSet] = {}
        self._hooks: list[DriftHook] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._feedback_cursor = 0
        self._next_feedback_at = 0.0
        self._next_hook_poll_at = 0.0
        self._next_checkpoint_at = 0.0
        self._unrecorded: list[tuple[MonitorSet, list[Finding]]] = []
        if retrain is not None:
            self.add_hook(RetrainOnDrift(store, config, retrain))
        if abort_canary is not None:
            self.add_hook(AbortCanaryOnDrift(config, abort_canary, self.is_drifting))

    # Lifecycle.

    def start(self) -> None:
        self._stopping.clear()
        self._feedback_cursor = _last_feedback_id(self.store)
        self._thread = threading.Thread(target=self._loop, name="drift", daemon=True)
        self._thread.start()
        logger.info(
            "drift monitors started (queue of %s rows, checkpoint every %s s)",
            self.settings.queue_rows,
            self.settings.checkpoint_seconds,
        )

    def stop(self) -> None:
        """Process what is queued, write every monitor's state, stop the thread."""
        self._stopping.set()
        self._queue.put(("wake",))
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._checkpoint(force=True)
        logger.info("drift monitors stopped")

    def add_hook(self, hook: DriftHook) -> None:
        """Call ``hook.on_drift(event)`` for each drift event from now on."""
        self._hooks.append(hook)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued row is processed; return False on timeout."""
        with self._idle:
            return self._idle.wait_for(
                lambda: self._queued_rows == 0 and not self._busy, timeout
            )

    # The request path: admission only.

    def observe(
        self,
        model: str,
        version: int,
        features: Sequence[float] | Mapping[str, float],
        prediction: float | None = None,
        *,
        role: str | None = None,
    ) -> bool:
        """Queue one served row; return False when it was skipped under overload.

        Args:
            model: the model's name.
            version: the version that returned the prediction.
            features: the row, in the model's feature order or by feature name.
            prediction: the value the prediction monitor watches
                (``prediction_value`` derives it from a model's outputs).
            role: ``stable`` or ``canary``; None reads it from the deployment.
        """
        value = math.nan if prediction is None else prediction
        return self._admit([(_ROW, model, version, role, (features, value))]) == 1

    def observe_error(
        self, model: str, version: int, error: float, *, role: str | None = None
    ) -> bool:
        """Queue one error value: 1 for a wrong prediction, 0 for a right one."""
        return self._admit([(_ERROR, model, version, role, error)]) == 1

    def on_predictions(self, logged: list[dict[str, Any]]) -> None:
        """Queue rows from ``agent.serving.PredictionFeed``; subscribe this method."""
        items = [
            (
                _ROW,
                row["model"],
                row["version"],
                None,
                (row["features"], prediction_value(row["outputs"])),
            )
            for row in logged
        ]
        self._admit(items)

    def on_skipped(self, model: str, version: int, rows: int) -> None:
        """Count rows the feed sampled out; they show as skipped on the monitors."""
        with self._lock:
            self._skipped[(model, version, _ROW)] += rows

    def _admit(self, items: list[tuple]) -> int:
        capacity = self.settings.queue_rows
        sample_from = capacity * self.settings.sample_above
        admitted = 0
        with self._lock:
            for item in items:
                queued = self._queued_rows
                keep = queued < capacity and (
                    queued < sample_from or self._take_sample()
                )
                if keep:
                    self._queue.put(item)
                    self._queued_rows += 1
                    admitted += 1
                else:
                    self._skipped[(item[1], item[2], item[0])] += 1
        return admitted

    def _take_sample(self) -> bool:
        self._sampled += 1
        return self._sampled % self.settings.sample_every == 0

    # Queries, for hooks and tests; call them on the drift thread or when idle.

    def monitor_set(self, model: str, role: str) -> MonitorSet | None:
        return self._sets.get((model, role))

    def is_drifting(self, model: str, role: str, signal: str) -> bool:
        """Return whether that monitor drifts now, from the store if not loaded."""
        monitor_set = self._sets.get((model, role))
        if monitor_set is not None:
            monitor = monitor_set.monitor(signal)
            return monitor is not None and monitor.status is MonitorStatus.DRIFTING
        stored = rows.load_monitors(self.store.db, model, role).get(signal)
        state = (stored or {}).get("state") or {}
        return state.get("status") == MonitorStatus.DRIFTING

    # The drift thread.

    def _loop(self) -> None:
        while True:
            items = self._drain()
            try:
                self._record_unrecorded()
                self._process(items)
                self._poll_feedback()
                self._poll_hooks()
                self._checkpoint()
            except Exception:
                logger.exception(
                    "the drift thread failed on a batch of %s queued items; the "
                    "rows not yet fed to their monitors are lost",
                    len(items),
                )
            finally:
                with self._idle:
                    self._queued_rows -= sum(1 for item in items if item[0] != "wake")
                    self._busy = False
                    self._idle.notify_all()
            if self._stopping.is_set() and self._queue.empty():
                return

    def _drain(self) -> list[tuple]:
        timeout = min(self.settings.poll_seconds, self.settings.checkpoint_seconds)
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        with self._lock:
            self._busy = True
        items = [first]
        while len(items) < MAX_BATCH_ITEMS:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _process(self, items: list[tuple]) -> None:
        groups: dict[tuple, list[Any]] = defaultdict(list)
        deployments: dict[str, dict[str, Any] | None] = {}
        for kind, *rest in items:
            if kind == "wake":
                continue
            model, version, role, payload = rest
            role = role or self._role_of(model, version, deployments)
            groups[(kind, model, version, role)].append(payload)
        for (kind, model, version, role), payloads in groups.items():
            monitor_set = self._set_for(model, version, role) if role else None
            if monitor_set is None:
                self.unmonitored_rows[model] += len(payloads)
                continue
            if kind == _ROW:
                features = [payload[0] for payload in payloads]
                predictions = [payload[1] for payload in payloads]
                findings = monitor_set.feed_rows(features, predictions)
            else:
                findings = monitor_set.feed_errors(payloads)
            if findings:
                self._record(monitor_set, findings)
        self._apply_skipped()

    def _apply_skipped(self) -> None:
        """Move skipped counts onto the monitor sets of their versions.

        Counts of a version without a monitor set yet stay here until one
        is built.
        """
        with self._lock:
            skipped, self._skipped = self._skipped, Counter()
        waiting: Counter[tuple[str, int, str]] = Counter()
        for (model, version, kind), count in skipped.items():
            monitor_set = self._set_of_version(model, version)
            if monitor_set is None:
                waiting[(model, version, kind)] += count
            elif kind == _ROW:
                monitor_set.add_skipped(rows=count)
            else:
                monitor_set.add_skipped(errors=count)
        with self._lock:
            self._skipped.update(waiting)

    def _set_of_version(self, model: str, version: int) -> MonitorSet | None:
        for role in ROLES:
            monitor_set = self._sets.get((model, role))
            if monitor_set is not None and monitor_set.version == version:
                return monitor_set
        return None

    def _role_of(
        self, model: str, version: int, cache: dict[str, dict[str, Any] | None]
    ) -> str | None:
        if model not in cache:
            cache[model] = deployment_rows.get_deployment(self.store.db, model)
        deployment = cache[model]
        if deployment is None:
            return None
        if deployment["stable_version"] == version:
            return "stable"
        if deployment["canary_version"] == version:
            return "canary"
        return None

    def _set_for(self, model: str, version: int, role: str) -> MonitorSet | None:
        current = self._sets.get((model, role))
        if current is not None and current.version == version:
            return current
        section = self.config.model(model)
        if section is None or not section.monitoring.enabled:
            return None

        db = self.store.db
        version_row = version_rows.find_version(db, model, version)
        if version_row is None:
            logger.warning(
                "rows of %s version %s arrived, but the store has no such version; "
                "they are not monitored",
                model,
                version,
            )
            return None

        reference = version_row.get("reference") or {}
        feature_names = _feature_names(version_row, reference)
        if not feature_names:
            logger.warning(
                "%s version %s names no features in its lineage or reference, so "
                "it gets no feature monitors; prediction and error are watched",
                model,
                version,
            )
        monitor_set = MonitorSet(
            model,
            role,
            version,
            section.monitoring,
            feature_names,
            feature_references(reference),
        )
        restored = monitor_set.restore(rows.load_monitors(db, model, role))

        self._sets[(model, role)] = monitor_set
        logger.info(
            "drift monitors of %s %s watch version %s (%s of %s restored)",
            model,
            role,
            version,
            restored,
            len(monitor_set.monitors),
        )
        return monitor_set

    # Events.

    def _record(self, monitor_set: MonitorSet, findings: list[Finding]) -> None:
        now = time.time()
        events: list[DriftEvent] = []
        try:
            with self.store.write() as db:
                for finding in findings:
                    events.append(self._insert_event(db, monitor_set, finding, now))
                monitor_set.save(db)
        except StoreError:
            # The monitors already count these events, so they must not be
            # lost: the next pass of the drift thread writes them again.
            logger.exception(
                "writing %s drift events of %s %s failed; retrying",
                len(findings),
                monitor_set.model,
                monitor_set.role,
            )
            self._unrecorded.append((monitor_set, findings))
            return
        for event in events:
            logger.warning(
                "drift event %s: %s of %s version %s (%s) changed at sample %s",
                event.id,
                event.signal,
                event.model,
                event.version,
                event.role,
                event.sample_index,
            )
            self._call_hooks(event)

    def _record_unrecorded(self) -> None:
        unrecorded, self._unrecorded = self._unrecorded, []
        for monitor_set, findings in unrecorded:
            self._record(monitor_set, findings)

    def _insert_event(
        self, db: Any, monitor_set: MonitorSet, finding: Finding, now: float
    ) -> DriftEvent:
        event_id = rows.insert_event(
            db,
            model=monitor_set.model,
            version=monitor_set.version,
            role=monitor_set.role,
            signal=finding.signal,
            detector=finding.detector,
            sample_index=finding.sample_index,
            ts=now,
            stats=finding.stats,
        )
        alert_id = alerts.raise_alert(
            db,
            kind="drift",
            severity="warning",
            source=f"model/{monitor_set.model}/{monitor_set.role}/{finding.signal}",
            message=_alert_message(event_id, monitor_set, finding),
        )
        rows.link_alert(db, event_id, alert_id)
        return DriftEvent(
            id=event_id,
            alert_id=alert_id,
            model=monitor_set.model,
            version=monitor_set.version,
            role=monitor_set.role,
            signal=finding.signal,
            detector=finding.detector,
            sample_index=finding.sample_index,
            ts=now,
            stats=finding.stats,
        )

    def _call_hooks(self, event: DriftEvent) -> None:
        for hook in self._hooks:
            try:
                hook.on_drift(event)
            except Exception:
                logger.exception(
                    "drift hook %s failed on event %s", type(hook).__name__, event.id
                )

    # Feedback and checkpoints.

    def _poll_feedback(self) -> None:
        if not self.read_feedback or time.monotonic() < self._next_feedback_at:
            return
        self._next_feedback_at = time.monotonic() + self.settings.poll_seconds
        labelled = rows.read_labelled_after(
            self.store.db, self._feedback_cursor, FEEDBACK_BATCH_ROWS
        )
        if not labelled:
            return
        self._feedback_cursor = labelled[-1]["id"]
        groups: dict[tuple[str, int], list[float]] = defaultdict(list)
        for row in labelled:
            wrong = row["predicted"] is None or (
                prediction_rows.label_text(row["predicted"]) != row["label"]
            )
            groups[(row["model"], row["version"])].append(1.0 if wrong else 0.0)
        deployments: dict[str, dict[str, Any] | None] = {}
        for (model, version), errors in groups.items():
            role = self._role_of(model, version, deployments)
            monitor_set = self._set_for(model, version, role) if role else None
            if monitor_set is None:
                self.unmonitored_rows[model] += len(errors)
                continue
            findings = monitor_set.feed_errors(errors)
            if findings:
                self._record(monitor_set, findings)

    def _poll_hooks(self) -> None:
        """Let hooks that wait for something (e.g. feedback labels) act."""
        if time.monotonic() < self._next_hook_poll_at:
            return
        self._next_hook_poll_at = time.monotonic() + self.settings.poll_seconds
        for hook in self._hooks:
            poll = getattr(hook, "poll", None)
            if poll is None:
                continue
            try:
                poll()
            except Exception:
                logger.exception("drift hook %s failed to poll", type(hook).__name__)

    def _checkpoint(self, force: bool = False) -> None:
        if not force and time.monotonic() < self._next_checkpoint_at:
            return
        self._next_checkpoint_at = time.monotonic() + self.settings.checkpoint_seconds
        self._apply_skipped()
        self._drop_ended_canaries()
        dirty = [
            monitor_set for monitor_set in self._sets.values() if monitor_set.dirty
        ]
        if not dirty:
            return
        with self.store.write() as db:
            for monitor_set in dirty:
                monitor_set.save(db)
        logger.debug("drift monitors checkpointed: %s sets", len(dirty))

    def _drop_ended_canaries(self) -> None:
        """Forget the monitors of a canary version that no longer serves."""
        for (model, role), monitor_set in list(self._sets.items()):
            if role != "canary":
                continue
            deployment = deployment_rows.get_deployment(self.store.db, model)
            if (
                deployment is None
                or deployment["canary_version"] == monitor_set.version
            ):
                continue
            del self._sets[(model, role)]
            with self.store.write() as db:
                rows.delete_monitors(db, model, role)
            logger.info(
                "drift monitors of %s canary version %s removed: the canary ended",
                model,
                monitor_set.version,
            )


def prediction_value(outputs: Mapping[str, Any]) -> float:
    """Return the number the prediction monitor watches for one served row.

    A binary classifier's positive-class probability; the top-class
    probability of a classifier with more classes; else the label when it
    is a number. NaN otherwise, which the monitor counts as non-finite.
    """
    probabilities = outputs.get("probabilities")
    if isinstance(probabilities, list) and probabilities:
        if any(not isinstance(p, int | float) for p in probabilities):
            return math.nan
        return float(
            probabilities[1] if len(probabilities) == 2 else max(probabilities)
        )
    label = outputs.get("label")
    if isinstance(label, int | float) and not isinstance(label, bool):
        return float(label)
    return math.nan


def _feature_names(
    version: Mapping[str, Any], reference: Mapping[str, Any]
) -> list[str]:
    # The lineage lists the features in input order. The store writes
    # reference_json with sorted keys, so its order is only a fallback.
    dataset = (version.get("lineage") or {}).get("dataset") or {}
    names = list(dataset.get("features") or [])
    return names or list((reference.get("features") or {}).keys())


def _alert_message(event_id: int, monitor_set: MonitorSet, finding: Finding) -> str:
    before = finding.stats["before"].get("mean")
    after = finding.stats["after"].get("mean")
    return (
        f"Drift on {finding.signal} of {monitor_set.model} version "
        f"{monitor_set.version} ({monitor_set.role}): the mean moved from "
        f"{_number(before)} to {_number(after)} at sample {finding.sample_index} "
        f"(drift event {event_id})."
    )


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _last_feedback_id(store: Store) -> int:
    return store.db.conn.execute(
        "SELECT COALESCE(MAX(id), 0) FROM feedback"
    ).fetchone()[0]
