"""The csv dataset's header checks and the files it declares for config checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.training.data import load_tabular
from plugins import DataError
from plugins.datasets.csv_file import CsvDataset
from plugins.datasets.sqlite_table import SqliteTableDataset


def _csv(tmp_path: Path, text: str) -> CsvDataset:
    (tmp_path / "data.csv").write_text(text)
    return CsvDataset(
        CsvDataset.validate_options({"path": "data.csv"}, base_dir=tmp_path)
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "a,a,y",
            "The header of the CSV file {path} names the column 'a' twice "
            "(columns 1 and 2); rename one of them.",
        ),
        (
            "a,b,y,b",
            "The header of the CSV file {path} names the column 'b' twice "
            "(columns 2 and 4); rename one of them.",
        ),
        (
            "a,,y",
            "The header of the CSV file {path} has no name for column 2; name every "
            "column.",
        ),
        (
            "a, ,y",
            "The header of the CSV file {path} has no name for column 2; name every "
            "column.",
        ),
    ],
)
def test_bad_header_is_rejected(tmp_path: Path, header: str, message: str):
    dataset = _csv(tmp_path, f"{header}\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError) as caught:
        load_tabular(dataset, features=None, target="y", sensitive=None)
    assert str(caught.value) == message.format(path=tmp_path / "data.csv")


def test_distinct_header_loads_every_column(tmp_path: Path):
    dataset = _csv(tmp_path, "a,b,y\n1,2,0\n3,4,1\n")
    data = load_tabular(dataset, features=None, target="y", sensitive=None)
    assert data.feature_names == ["a", "b"]
    assert data.features.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_csv_declares_its_file(tmp_path: Path):
    options = CsvDataset.validate_options({"path": "data.csv"}, base_dir=tmp_path)
    assert CsvDataset.input_files(options) == {
        "path": (tmp_path / "data.csv").resolve()
    }


def test_sqlite_declares_its_file(tmp_path: Path):
    options = SqliteTableDataset.validate_options(
        {"path": "data.db", "table": "t"}, base_dir=tmp_path
    )
    assert SqliteTableDataset.input_files(options) == {
        "path": (tmp_path / "data.db").resolve()
    }
