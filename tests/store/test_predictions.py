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
