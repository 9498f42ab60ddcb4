"""The hook that hands logged predictions to drift monitors in the control process.

The serving worker writes predictions to the store. This thread reads
the rows added since its last poll and calls every subscriber with them,
oldest first. Only rows with status 200 and finite outputs are passed
on, so NaN and infinity never reach a detector. It starts at the newest
row when the agent starts, so predictions logged while the agent was
stopped are not replayed. Without subscribers it reads nothing.

Under load the feed samples. It passes on at most ``max_rows_per_second``
rows on average, in bursts of up to ``burst_seconds`` of that rate (a
token bucket, full at start), and when more were logged a poll passes on
a uniform random sample of what the bucket allows. The rows it leaves
out are counted per model and version in ``skipped_rows`` and reported
to each subscriber's ``on_skipped`` callback. Without this bound,
decoding and monitoring every row of a busy worker (about 100,000 rows
per second for 64-row batches on a 2-core VM) would take more than a
core from the control process and, on a small host, from serving.

A subscriber gets a list of dicts with ``id``, ``model``, ``version``,
``request_id``, ``row_index``, ``ts``, ``features`` (a list in the
model's feature order), ``outputs`` (``{"label", "probabilities"}``)
and ``latency_seconds``. It should only enqueue the rows, because it
runs on this thread.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from store import Store
from store import predictions as prediction_rows

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
BATCH_ROWS = 5000
# Each row passed on costs the control process about 25 µs of CPU (decoding
# here, then the drift service's queue and monitors), and each row logged
# about 0.2 µs (counting the skipped ones), measured on a 2-core Xeon VM.
# 1,000 rows per second of 100,000 logged thus take about 5 % of one core.
# The drift monitors confirm a 0.5 standard deviation shift within about
# 250 rows (docs/drift.md), a quarter of a second of this sample.
MAX_ROWS_PER_SECOND = 1000
# A burst of traffic after a quiet spell is monitored in full up to 5,000
# rows, which cost the control process about an eighth of a second.
BURST_SECONDS = 5.0

Subscriber = Callable[[list[dict[str, Any]]], None]
# Called with (model, version, rows) for rows the feed left out.
SkippedCallback = Callable[[str, int, int], None]


class PredictionFeed:
    """Polls ``predictions`` and fans new rows, or a sample of them, out.

    Args:
        store: the agent's store.
        poll_seconds: seconds between two polls of the background thread.
        max_rows_per_second: the maximum rows passed on per second, on
            average. More are sampled down and counted.
        burst_seconds: how many seconds of ``max_rows_per_second`` a
            burst after a quiet spell may use at once.
        clock: monotonic seconds; tests pass a fake.
    """

    def __init__(
        self,
        store: Store,
        poll_seconds: float = POLL_SECONDS,
        max_rows_per_second: int = MAX_ROWS_PER_SECOND,
        burst_seconds: float = BURST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_rows_per_second < 1:
            raise ValueError(
                f"max_rows_per_second is {max_rows_per_second}; it must be at least 1."
            )
        if max_rows_per_second * burst_seconds < 1:
            raise ValueError(
                f"burst_seconds is {burst_seconds}; with max_rows_per_second "
                f"{max_rows_per_second} a burst must allow at least one row."
            )
        self.store = store
        self.poll_seconds = poll_seconds
        self.max_rows_per_second = max_rows_per_second
        self.burst_rows = max_rows_per_second * burst_seconds
        self.cursor = 0
        self.skipped_rows: Counter[tuple[str, int]] = Counter()
        self._subscribers: list[tuple[Subscriber, SkippedCallback | None]] = []
        self._random = random.Random()
        self._clock = clock
        self._allowance = self.burst_rows
        self._refilled_at = clock()
        self._sampling = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(
        self, subscriber: Subscriber, on_skipped: SkippedCallback | None = None
    ) -> None:
        """Call ``subscriber`` with new rows, and ``on_skipped`` with skip counts."""
        self._subscribers.append((subscriber, on_skipped))

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
        """Deliver the rows logged since the last poll, or a sample of them.

        Returns:
            How many rows were read, usable or not.
        """
        if not self._subscribers:
            return 0
        first, newest = self.cursor, prediction_rows.last_id(self.store.db)
        if newest <= first:
            return 0
        # SQLite gives a new row the highest id plus one, so the difference
        # is the number of new rows. A gap would only shrink the sample.
        new = newest - first
        allowed = self._refill()
        sampling = new > allowed
        self._log_sampling(sampling, new)
        if sampling:
            read = self._deliver_sample(first, newest, int(allowed))
            self._allowance -= int(allowed)
        else:
            read = self._deliver_all(newest)
            self._allowance -= new
        self.cursor = newest
        return read

    def _log_sampling(self, sampling: bool, new: int) -> None:
        if sampling == self._sampling:
            return
        self._sampling = sampling
        if sampling:
            logger.info(
                "prediction feed samples: %s rows logged since the last poll, at "
                "most %s rows per second go on to the drift monitors",
                new,
                self.max_rows_per_second,
            )
        else:
            logger.info(
                "prediction feed passes on every row again, with %s rows skipped "
                "so far",
                sum(self.skipped_rows.values()),
            )

    def _refill(self) -> float:
        """Add the allowance earned since the last poll and return the total."""
        now = self._clock()
        earned = (now - self._refilled_at) * self.max_rows_per_second
        self._allowance = min(self.burst_rows, self._allowance + earned)
        self._refilled_at = now
        return self._allowance

    def _deliver_all(self, newest: int) -> int:
        read = 0
        while True:
            rows = prediction_rows.read_after(
                self.store.db, self.cursor, BATCH_ROWS, until_id=newest
            )
            if not rows:
                return read
            read += len(rows)
            self.cursor = rows[-1]["id"]
            self._deliver(_usable(rows))

    def _deliver_sample(self, first: int, newest: int, size: int) -> int:
        """Deliver a uniform random sample of ``size`` ids, count the rest."""
        ids = sorted(self._random.sample(range(first + 1, newest + 1), size))
        delivered: Counter[tuple[str, int]] = Counter()
        read = 0
        for start in range(0, len(ids), BATCH_ROWS):
            rows = prediction_rows.read_ids(
                self.store.db, ids[start : start + BATCH_ROWS]
            )
            read += len(rows)
            usable = _usable(rows)
            delivered.update((row["model"], row["version"]) for row in usable)
            self._deliver(usable)
        self._count_skipped(first, newest, delivered)
        return read

    def _count_skipped(
        self, first: int, newest: int, delivered: Counter[tuple[str, int]]
    ) -> None:
        usable = prediction_rows.count_usable(self.store.db, first, newest)
        for (model, version), count in usable.items():
            skipped = count - delivered[(model, version)]
            if skipped <= 0:
                continue
            self.skipped_rows[(model, version)] += skipped
            for _, on_skipped in self._subscribers:
                if on_skipped is None:
                    continue
                try:
                    on_skipped(model, version, skipped)
                except Exception:
                    logger.exception(
                        "skip counter %r failed on %s rows of %s version %s",
                        on_skipped,
                        skipped,
                        model,
                        version,
                    )
        logger.debug(
            "prediction feed passed on a sample of %s of %s new rows",
            sum(delivered.values()),
            sum(usable.values()),
        )

    def _deliver(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        for subscriber, _ in self._subscribers:
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


def _usable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row["status"] == 200 and not row["nonfinite"]]
