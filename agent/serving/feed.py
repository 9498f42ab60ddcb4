"""The hook that hands logged predictions to drift monitors in the control process.

The serving worker writes predictions to the store. This thread reads
the rows added since its last poll and calls every subscriber with them,
oldest first. Only rows with status 200 and finite outputs are passed
on, so NaN and infinity never reach a detector. It starts at the newest
row when the agent starts, so predictions logged while the agent was
stopped are not replayed. Without subscribers it reads nothing.

A subscriber gets a list of dicts with ``id``, ``model``, ``version``,
``request_id``, ``row_index``, ``ts``, ``features`` (a list in the
model's feature order), ``outputs`` (``{"label", "probabilities"}``)
and ``latency_seconds``. It should only enqueue the rows, because it
runs on this thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from store import Store
from store import predictions as prediction_rows

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
BATCH_ROWS = 5000

Subscriber = Callable[[list[dict[str, Any]]], None]


class PredictionFeed:
    """Polls ``predictions`` and fans new rows out to subscribers."""

    def __init__(self, store: Store, poll_seconds: float = POLL_SECONDS) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.cursor = 0
        self._subscribers: list[Subscriber] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def start(self) -> None:
        self.cursor = prediction_rows.last_id(self.store.db)
        self._thread = threading.Thread(
            target=self._loop, name="prediction-feed", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def poll(self) -> int:
        """Deliver every new row now; return how many rows were read."""
        if not self._subscribers:
            return 0
        read = 0
        while True:
            rows = prediction_rows.read_after(self.store.db, self.cursor, BATCH_ROWS)
            if not rows:
                return read
            self.cursor = rows[-1]["id"]
            read += len(rows)
            usable = [
                row for row in rows if row["status"] == 200 and not row["nonfinite"]
            ]
            if usable:
                self._deliver(usable)

    def _deliver(self, rows: list[dict[str, Any]]) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(rows)
            except Exception:
                logger.exception(
                    "prediction subscriber %r failed on %s rows; they are skipped",
                    subscriber,
                    len(rows),
                )

    def _loop(self) -> None:
        while not self._stopping.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:
                logger.exception("reading new predictions failed; retrying")
