"""The predictions table: batched inserts and the readers of the drift feed."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import Store
from store import predictions as prediction_rows


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "store.db")
    yield store
    store.close()


def _row(index: int, version: int = 1, status: int = 200, nonfinite: int = 0):
    return (
        "m",
        version,
        f"req/{index}",
        index,
        1000.0 + index,
        f"[{index}, 0.5]",
        '{"label": 1, "probabilities": [0.25, 0.75]}',
        0.004,
        status,
        nonfinite,
    )


def test_insert_keeps_order_across_statements(store):
    rows = [_row(index) for index in range(150)]

    with store.write() as db:
        prediction_rows.insert_predictions(db, rows)

    stored = store.db.conn.execute(
        f"SELECT {', '.join(prediction_rows.PREDICTION_COLUMNS)} FROM predictions "
        "ORDER BY id"
    ).fetchall()
    assert stored == rows


def test_insert_rejects_short_row(store):
    rows = [_row(index) for index in range(70)]
    rows[5] = rows[5][:-1]

    with pytest.raises(ValueError, match="row 5 has 9 values"), store.write() as db:
        prediction_rows.insert_predictions(db, rows)

    count = store.db.conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    assert count == 0


def test_read_after_decodes_rows(store):
    with store.write() as db:
        prediction_rows.insert_predictions(db, [_row(index) for index in range(5)])

    rows = prediction_rows.read_after(store.db, 1, until_id=3)

    assert [row["id"] for row in rows] == [2, 3]
    assert rows[0] == {
        "id": 2,
        "model": "m",
        "version": 1,
        "request_id": "req/1",
        "row_index": 1,
        "ts": 1001.0,
        "features": [1, 0.5],
        "outputs": {"label": 1, "probabilities": [0.25, 0.75]},
        "latency_seconds": 0.004,
        "status": 200,
        "nonfinite": False,
    }


def test_read_ids_returns_id_order(store):
    with store.write() as db:
        prediction_rows.insert_predictions(db, [_row(index) for index in range(1200)])

    rows = prediction_rows.read_ids(store.db, [1100, 3, 700, 2, 1199])

    assert [row["id"] for row in rows] == [2, 3, 700, 1100, 1199]
    assert rows[-1]["features"] == [1198, 0.5]


def test_count_usable_leaves_out_failed_and_nonfinite(store):
    rows = [_row(index, version=1) for index in range(6)]
    rows += [_row(6, version=2), _row(7, version=2, status=500)]
    rows += [_row(8, version=2, nonfinite=1)]
    with store.write() as db:
        prediction_rows.insert_predictions(db, rows)

    counts = prediction_rows.count_usable(store.db, 2, 9)

    assert counts == {("m", 1): 4, ("m", 2): 1}


def test_count_usable_one_version(store):
    rows = [_row(index) for index in range(5)] + [_row(5, status=500)]
    with store.write() as db:
        prediction_rows.insert_predictions(db, rows)

    assert prediction_rows.count_usable(store.db, 0, 6) == {("m", 1): 5}
    assert prediction_rows.count_usable(store.db, 5, 6) == {}


@pytest.mark.parametrize("requests", [1, 2, 19, 20, 21, 100, 101])
def test_version_stats_p95_is_nearest_rank(store, requests):
    # Ten latencies from 1 to 10 ms, out of order and repeated. The slower
    # rows below must not count: later rows of a batch, another version's
    # row and a row before ``since``.
    latencies = [0.001 * ((index * 7) % 10 + 1) for index in range(requests)]
    rows = [
        ("m", 1, f"q{index}", 0, 50.0, "[]", "null", latency, 200, 0)
        for index, latency in enumerate(latencies)
    ]
    rows += [
        ("m", 1, f"q0/{index}", index, 50.0, "[]", "null", 9.0, 200, 0)
        for index in (1, 2)
    ]
    rows += [("m", 2, "other", 0, 50.0, "[]", "null", 8.0, 200, 0)]
    rows += [("m", 1, "old", 0, 5.0, "[]", "null", 7.0, 200, 0)]
    with store.write() as db:
        prediction_rows.insert_predictions(db, rows)

    stats = prediction_rows.version_stats(store.db, "m", 1, since=10.0)

    rank = -(-95 * requests // 100)
    assert stats["requests"] == requests
    assert stats["latency_p95_seconds"] == sorted(latencies)[rank - 1]


def test_version_stats_counts_window_and_labels(store):
    rows = [
        ("m", 1, "a", 0, 100.0, "[]", '{"label": 1}', 0.01, 200, 0),
        ("m", 1, "b", 0, 100.0, "[]", '{"label": 0}', 0.01, 200, 0),
        ("m", 1, "c", 0, 100.0, "[]", '{"label": null}', 0.01, 200, 1),
        ("m", 1, "d", 0, 100.0, "[]", "null", 0.01, 500, 0),
        ("m", 1, "old", 0, 10.0, "[]", '{"label": 0}', 0.01, 500, 0),
        ("m", 2, "e", 0, 100.0, "[]", '{"label": 0}', 0.01, 200, 0),
    ]
    with store.write() as db:
        prediction_rows.insert_predictions(db, rows)
        labels = [("a", "1"), ("b", "1"), ("c", "1"), ("old", "1"), ("e", "1")]
        prediction_rows.insert_feedback(db, "m", labels, 200.0)

    stats = prediction_rows.version_stats(store.db, "m", 1, since=50.0)

    assert stats == {
        "requests": 4,
        "rows": 4,
        "server_errors": 1,
        "nonfinite_rows": 1,
        "latency_p95_seconds": 0.01,
        "labelled": 3,
        "label_errors": 2,
        "error_rate": 2 / 3,
    }
