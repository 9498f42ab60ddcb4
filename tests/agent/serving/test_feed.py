"""The prediction feed: all rows below its budget, a counted sample above it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from agent.serving.feed import PredictionFeed
from store import Store
from store import predictions as prediction_rows

OUTPUTS = '{"label": 0, "probabilities": [0.75, 0.25]}'


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "store.db")
    yield store
    store.close()


def _log(store: Store, count: int, version: int = 1, **columns) -> None:
    """Insert ``count`` logged rows of model m, as the worker's log writer does."""
    status = columns.get("status", 200)
    nonfinite = columns.get("nonfinite", 0)
    first = prediction_rows.last_id(store.db)
    rows = [
        (
            "m",
            version,
            f"r{first + index}",
            0,
            1000.0 + index,
            f"[{index}.5, 1.0, -2.0]",
            OUTPUTS,
            0.001,
            status,
            nonfinite,
        )
        for index in range(count)
    ]
    with store.write() as db:
        prediction_rows.insert_predictions(db, rows)


class _Subscriber:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.skipped: Counter[tuple[str, int]] = Counter()

    def on_rows(self, rows: list[dict]) -> None:
        self.rows.extend(rows)

    def on_skipped(self, model: str, version: int, count: int) -> None:
        self.skipped[(model, version)] += count


def test_feed_below_budget_passes_every_row(store):
    _log(store, 40)
    _log(store, 2, status=500)
    feed = PredictionFeed(store, max_rows_per_second=100)
    subscriber = _Subscriber()
    feed.subscribe(subscriber.on_rows, subscriber.on_skipped)

    read = feed.poll()

    assert read == 42
    assert len(subscriber.rows) == 40
    assert subscriber.rows[0]["features"] == [0.5, 1.0, -2.0]
    assert subscriber.skipped == Counter()
    assert feed.skipped_rows == Counter()
    assert feed.cursor == 42
    assert feed.poll() == 0


def test_feed_above_budget_samples_and_counts(store):
    _log(store, 600, version=1)
    _log(store, 300, version=2)
    _log(store, 100, version=1, nonfinite=1)
    feed = PredictionFeed(store, max_rows_per_second=200, burst_seconds=0.5)
    subscriber = _Subscriber()
    feed.subscribe(subscriber.on_rows, subscriber.on_skipped)

    read = feed.poll()

    assert read == 100
    assert feed.cursor == 1000
    ids = [row["id"] for row in subscriber.rows]
    assert ids == sorted(ids)
    assert all(not row["nonfinite"] for row in subscriber.rows)
    delivered = Counter((row["model"], row["version"]) for row in subscriber.rows)
    assert delivered[("m", 1)] + subscriber.skipped[("m", 1)] == 600
    assert delivered[("m", 2)] + subscriber.skipped[("m", 2)] == 300
    assert feed.skipped_rows == subscriber.skipped
    assert feed.poll() == 0


def test_feed_sample_spreads_over_the_range(store):
    _log(store, 10_000)
    feed = PredictionFeed(store, max_rows_per_second=1000, burst_seconds=1.0)
    subscriber = _Subscriber()
    feed.subscribe(subscriber.on_rows)

    feed.poll()

    ids = [row["id"] for row in subscriber.rows]
    assert len(ids) == 1000
    # A uniform sample of 1,000 from 10,000 puts about 500 in each half; the
    # bounds hold with a probability far above 1 - 1e-9.
    assert 380 < sum(1 for row_id in ids if row_id <= 5000) < 620


def test_feed_budget_refills_with_time(store):
    now = [0.0]
    feed = PredictionFeed(
        store, max_rows_per_second=100, burst_seconds=2.0, clock=lambda: now[0]
    )
    subscriber = _Subscriber()
    feed.subscribe(subscriber.on_rows, subscriber.on_skipped)

    _log(store, 200)
    burst = feed.poll()
    _log(store, 50)
    spent = feed.poll()
    now[0] = 0.3
    _log(store, 50)
    refilled = feed.poll()
    now[0] = 100.0
    _log(store, 300)
    capped = feed.poll()

    assert burst == 200
    assert spent == 0
    assert refilled == 30
    assert capped == 200
    assert len(subscriber.rows) == 430
    assert subscriber.skipped == Counter({("m", 1): 170})


def test_feed_failing_subscriber_spares_others(store):
    _log(store, 3)
    feed = PredictionFeed(store)
    subscriber = _Subscriber()

    def broken(rows: list[dict]) -> None:
        raise RuntimeError("subscriber bug")

    feed.subscribe(broken)
    feed.subscribe(subscriber.on_rows)

    assert feed.poll() == 3
    assert len(subscriber.rows) == 3


def test_feed_rejects_zero_budget(store):
    with pytest.raises(ValueError, match="max_rows_per_second is 0"):
        PredictionFeed(store, max_rows_per_second=0)
    with pytest.raises(ValueError, match="burst_seconds is 0.001"):
        PredictionFeed(store, max_rows_per_second=100, burst_seconds=0.001)
