"""The built-in datasets and the loader that checks their rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from agent.training.data import feedback_rows, load_tabular
from plugins import DataError, PluginConfigError
from plugins.datasets.csv_file import CsvDataset
from plugins.datasets.river_dataset import RiverDataset
from plugins.datasets.sqlite_table import SqliteTableDataset


def _csv(tmp_path: Path, text: str) -> CsvDataset:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return CsvDataset(
        CsvDataset.validate_options({"path": "data.csv"}, base_dir=tmp_path)
    )


def test_river_shuttle_rows():
    dataset = RiverDataset(
        RiverDataset.validate_options({"name": "Shuttle"}, base_dir=Path("."))
    )
    data = load_tabular(
        dataset, features=None, target=dataset.default_target(), sensitive=None
    )
    assert data.row_count == 49_097
    assert data.feature_names == [f"f{i}" for i in range(1, 10)]
    assert data.target_name == "anomaly"
    assert sum(data.target) == 3_511
    assert sorted(set(data.target)) == [0, 1]
    assert data.features.shape == (49_097, 9)
    assert data.features[0].tolist() == [50, 21, 77, 0, 28, 0, 27, 48, 22]
    assert (
        data.sha256
        == "d0303d6fdf7a925218c5fda3da9611897f5352085761162b2f071365c5214472"
    )


def test_river_dataset_that_downloads_is_rejected():
    with pytest.raises(
        PluginConfigError, match="'CreditCard' is not a data set shipped with river"
    ):
        RiverDataset.validate_options({"name": "CreditCard"}, base_dir=Path("."))


def test_csv_values_are_converted(tmp_path: Path):
    dataset = _csv(tmp_path, "a,b,label,group\n1,2.5,yes,x\n-3,1e2,no,y\n")
    data = load_tabular(dataset, features=None, target="label", sensitive="group")
    assert data.feature_names == ["a", "b"]
    assert data.features.tolist() == [[1.0, 2.5], [-3.0, 100.0]]
    assert data.target == ["yes", "no"]
    assert data.sensitive == ["x", "y"]


def test_integer_like_labels_become_ints(tmp_path: Path):
    data = load_tabular(
        _csv(tmp_path, "a,y\n1,0\n2, 1 \n3,1.0\n"),
        features=None,
        target="y",
        sensitive=None,
    )
    assert data.target == [0, 1, 1]


def test_hash_follows_values_not_format(tmp_path: Path):
    first = load_tabular(
        _csv(tmp_path, "a,y\n1,0\n2,1\n"), features=None, target="y", sensitive=None
    )
    spaced = load_tabular(
        _csv(tmp_path, "a,y\n1.0,0\n2.00,1\n"),
        features=None,
        target="y",
        sensitive=None,
    )
    changed = load_tabular(
        _csv(tmp_path, "a,y\n1,0\n3,1\n"), features=None, target="y", sensitive=None
    )
    assert first.sha256 == spaced.sha256
    assert first.sha256 != changed.sha256


def test_configured_feature_order_is_kept(tmp_path: Path):
    data = load_tabular(
        _csv(tmp_path, "a,b,y\n1,2,0\n"),
        features=["b", "a"],
        target="y",
        sensitive=None,
    )
    assert data.feature_names == ["b", "a"]
    assert data.features.tolist() == [[2.0, 1.0]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,y\n", "yielded no rows"),
        ("a,y\n1,0\n,1\n", "Row 2 of the CSV file {path}: feature 'a' is empty."),
        (
            "a,y\n1,0\ninf,1\n",
            "Row 2 of the CSV file {path}: feature 'a' is 'inf', not finite.",
        ),
        ("a,y\n1,\n", "Row 1 of the CSV file {path}: the target 'y' is empty."),
        ("a,y\n1,0,9\n", "Line 2 of {path} has more fields than the header."),
    ],
)
def test_bad_csv_rows(tmp_path: Path, text: str, message: str):
    with pytest.raises(DataError) as caught:
        load_tabular(_csv(tmp_path, text), features=None, target="y", sensitive=None)
    assert message.format(path=tmp_path / "data.csv") in str(caught.value)


def test_missing_csv_file(tmp_path: Path):
    dataset = CsvDataset(
        CsvDataset.validate_options({"path": "absent.csv"}, base_dir=tmp_path)
    )
    with pytest.raises(DataError, match="absent.csv does not exist"):
        load_tabular(dataset, features=None, target="y", sensitive=None)


def test_sqlite_table_rows(tmp_path: Path):
    path = tmp_path / "data.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE samples (x REAL, flag INTEGER, y TEXT)")
        conn.executemany(
            "INSERT INTO samples VALUES (?, ?, ?)", [(0.5, 1, "a"), (1.5, 0, "b")]
        )
    options = SqliteTableDataset.validate_options(
        {"path": "data.db", "table": "samples"}, base_dir=tmp_path
    )
    data = load_tabular(
        SqliteTableDataset(options), features=None, target="y", sensitive=None
    )
    assert data.features.tolist() == [[0.5, 1.0], [1.5, 0.0]]
    assert data.target == ["a", "b"]


def test_sqlite_missing_table(tmp_path: Path):
    path = tmp_path / "data.db"
    sqlite3.connect(path).close()
    options = SqliteTableDataset.validate_options(
        {"path": "data.db", "table": "nope"}, base_dir=tmp_path
    )
    with pytest.raises(DataError, match="SQLite table nope in .*: no such table"):
        load_tabular(
            SqliteTableDataset(options), features=None, target="y", sensitive=None
        )


def test_feedback_rows_are_appended(tmp_path: Path):
    from store import Store

    store = Store(tmp_path / "store.db")
    with store.write() as db:
        db.conn.executemany(
            "INSERT INTO predictions (model, version, request_id, ts, features_json, "
            "outputs_json, "
            "latency_seconds, status) VALUES ('m', 1, ?, 0, ?, '{}', 0.01, 200)",
            [("r1", '{"a": 7, "b": 8}'), ("r2", "[9, 10]"), ("r3", '{"a": 1}')],
        )
        db.conn.executemany(
            "INSERT INTO feedback (model, request_id, label, ts) VALUES ('m', ?, ?, 0)",
            [("r1", "1"), ("r2", "0"), ("r3", "1"), ("unknown", "1")],
        )
    store.close()
    dataset = _csv(tmp_path, "a,b,y\n1,2,0\n")

    def feedback(features):
        return feedback_rows(tmp_path / "store.db", "m", features, None, "y")

    data = load_tabular(
        dataset, features=None, target="y", sensitive=None, feedback=feedback
    )
    assert data.row_count == 3
    assert data.feedback_rows == 2
    assert np.array_equal(
        data.features, np.array([[1, 2], [7, 8], [9, 10]], dtype=float)
    )
    assert data.target == [0, 1, 0]


def test_river_first_rows_holds_out_the_rest():
    options = RiverDataset.validate_options(
        {"name": "Shuttle", "first_rows": 100}, base_dir=Path(".")
    )
    dataset = RiverDataset(options)
    data = load_tabular(
        dataset, features=None, target=dataset.default_target(), sensitive=None
    )
    assert data.row_count == 100
    assert data.features[0].tolist() == [50, 21, 77, 0, 28, 0, 27, 48, 22]
    assert dataset.describe() == "river dataset Shuttle (first 100 rows)"


@pytest.mark.parametrize(
    ("value", "message"),
    [(1, "first_rows must be 2 or more"), ("100", "first_rows must be an int")],
)
def test_river_first_rows_bad_values(value, message):
    with pytest.raises(PluginConfigError, match=message):
        RiverDataset.validate_options(
            {"name": "Shuttle", "first_rows": value}, base_dir=Path(".")
        )


def test_river_first_rows_beyond_the_data_set():
    options = RiverDataset.validate_options(
        {"name": "Phishing", "first_rows": 5000}, base_dir=Path(".")
    )
    dataset = RiverDataset(options)

    with pytest.raises(
        DataError, match="first_rows is 5000, but the data set has only 1250"
    ):
        load_tabular(
            dataset, features=None, target=dataset.default_target(), sensitive=None
        )
