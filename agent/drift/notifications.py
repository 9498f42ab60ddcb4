"""Deliver alerts to the configured notifiers, one thread per notifier.

Each notifier's thread reads the alerts with an id above its cursor,
oldest first, and delivers those of at least its ``min_severity``. A
failed attempt is retried after ``backoff_seconds``, doubled for each
further attempt and capped at ``MAX_BACKOFF_SECONDS``, up to
``max_attempts`` attempts. The outcome (``delivered`` or ``failed``,
the attempts, the last detail) goes into ``notifications`` in the same
transaction that moves the cursor. So each alert is delivered once per
notifier, and an alert still in flight when the agent stops is tried
again at the next start.

The cursors live in the ``settings`` table. A notifier that starts for
the first time begins after the newest alert, so it does not replay
the store's history.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from agent.config import AgentConfig, NotifierSection
from agent.drift import rows
from plugins.notifiers import Notification, Notifier, NotifierError
from store import Store

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 300.0
BATCH_ALERTS = 100
CURSOR_SETTING_PREFIX = "notifications.cursor."
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def build_notifier(section: NotifierSection) -> Notifier:
    """Construct the notifier plugin a ``[[notifiers]]`` entry names."""
    import plugins

    notifier_class = plugins.load("notifier", section.plugin)
    if not (isinstance(notifier_class, type) and issubclass(notifier_class, Notifier)):
        raise plugins.PluginError(
            f"The notifier plugin {section.plugin!r} is not a subclass of "
            "plugins.notifiers.Notifier."
        )
    return notifier_class(section.options)


class NotificationService:
    """Starts one delivery thread per ``[[notifiers]]`` entry.

    Args:
        store: the agent's store.
        config: the agent configuration; ``notifiers`` and ``agent.name``.
        poll_seconds: seconds between two reads of new alerts.
    """

    def __init__(
        self, store: Store, config: AgentConfig, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self.workers = [
            NotifierWorker(store, section, config.agent.name, poll_seconds)
            for section in config.notifiers
        ]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


class NotifierWorker:
    """Delivers alerts to one notifier from a thread of its own."""

    def __init__(
        self, store: Store, section: NotifierSection, agent: str, poll_seconds: float
    ) -> None:
        self.store = store
        self.section = section
        self.agent = agent
        self.poll_seconds = poll_seconds
        self.notifier = build_notifier(section)
        self._cursor_key = CURSOR_SETTING_PREFIX + section.name
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._ensure_cursor()
        self._thread = threading.Thread(
            target=self._loop, name=f"notifier-{self.section.name}", daemon=True
        )
        self._thread.start()
        logger.info("notifier %s (%s) started", self.section.name, self.section.plugin)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=MAX_BACKOFF_SECONDS)
        self.notifier.close()

    def _loop(self) -> None:
        while not self._stopping.wait(self.poll_seconds):
            try:
                self.deliver_pending()
            except Exception:
                logger.exception(
                    "notifier %s failed to read alerts; retrying", self.section.name
                )

    def deliver_pending(self) -> int:
        """Deliver every alert after the cursor; return how many were handled."""
        handled = 0
        while not self._stopping.is_set():
            batch = self._alerts_after(self._cursor())
            if not batch:
                break
            for alert in batch:
                if self._stopping.is_set():
                    break
                self._handle(alert)
                handled += 1
        return handled

    def _handle(self, alert: dict[str, Any]) -> None:
        rank = SEVERITY_RANK.get(alert["severity"], 0)
        if rank < SEVERITY_RANK[self.section.min_severity]:
            self._finish(alert["id"], outcome=None)
            return
        outcome, attempts, detail = self._deliver(self._notification(alert))
        if outcome is None:
            return
        self._finish(alert["id"], outcome=outcome, attempts=attempts, detail=detail)

    def _deliver(self, notification: Notification) -> tuple[str | None, int, str]:
        """Try up to ``max_attempts`` times; return the outcome, attempts, detail.

        The outcome is None when the agent stops between two attempts, so
        the alert stays after the cursor and is tried again at the next start.
        """
        name = self.section.name
        detail = ""
        for attempt in range(1, self.section.max_attempts + 1):
            try:
                detail = self.notifier.send(notification)
            except NotifierError as error:
                detail = str(error)
            except Exception as error:
                logger.exception("notifier %s raised an unexpected error", name)
                detail = f"{type(error).__name__}: {error}"
            else:
                logger.info(
                    "alert %s delivered by %s on attempt %s: %s",
                    notification.alert_id,
                    name,
                    attempt,
                    detail,
                )
                return "delivered", attempt, detail
            logger.warning(
                "alert %s not delivered by %s on attempt %s of %s: %s",
                notification.alert_id,
                name,
                attempt,
                self.section.max_attempts,
                detail,
            )
            if attempt < self.section.max_attempts:
                delay = min(
                    self.section.backoff_seconds * 2 ** (attempt - 1),
                    MAX_BACKOFF_SECONDS,
                )
                if self._stopping.wait(delay):
                    return None, attempt, detail
        logger.error(
            "alert %s not delivered by %s after %s attempts; giving up: %s",
            notification.alert_id,
            name,
            self.section.max_attempts,
            detail,
        )
        return "failed", self.section.max_attempts, detail

    def _notification(self, alert: dict[str, Any]) -> Notification:
        details: dict[str, Any] = {}
        if alert["kind"] == "drift":
            event = rows.event_of_alert(self.store.db, alert["id"])
            if event is not None:
                details["drift_event"] = event
        return Notification(
            alert_id=alert["id"],
            agent=self.agent,
            kind=alert["kind"],
            severity=alert["severity"],
            source=alert["source"],
            message=alert["message"],
            created_at=alert["created_at"],
            details=details,
        )

    # The cursor and the outcome rows.

    def _alerts_after(self, cursor: int) -> list[dict[str, Any]]:
        return list(
            self.store.db.query(
                "SELECT * FROM alerts WHERE id > ? ORDER BY id LIMIT ?",
                [cursor, BATCH_ALERTS],
            )
        )

    def _cursor(self) -> int:
        row = self.store.db.conn.execute(
            "SELECT value FROM settings WHERE key = ?", (self._cursor_key,)
        ).fetchone()
        return int(row[0]) if row else 0

    def _ensure_cursor(self) -> None:
        with self.store.write() as db:
            db.conn.execute(
                "INSERT INTO settings (key, value) SELECT ?, COALESCE(MAX(id), 0) "
                "FROM alerts WHERE true ON CONFLICT (key) DO NOTHING",
                (self._cursor_key,),
            )

    def _finish(
        self,
        alert_id: int,
        *,
        outcome: str | None,
        attempts: int = 0,
        detail: str | None = None,
    ) -> None:
        name = self.section.name
        with self.store.write() as db:
            if outcome is not None:
                db.conn.execute(
                    "INSERT INTO notifications (alert_id, notifier, outcome, attempts, "
                    "detail, ts) VALUES (?, ?, ?, ?, ?, ?)",
                    (alert_id, name, outcome, attempts, detail, time.time()),
                )
            db.conn.execute(
                "UPDATE settings SET value = ? WHERE key = ?",
                (str(alert_id), self._cursor_key),
            )
