"""bench/_results.py: the figure rows, their table and the saved JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bench_modules import results

Figure = results.Figure


def test_ratio_divides_value_by_baseline() -> None:
    figure = Figure("throughput", 150.0, 100.0, "req/s", ">= 1.0x", True)

    assert figure.ratio == 1.5


def test_ratio_without_usable_baseline_is_none() -> None:
    absolute = Figure("failed requests", 0, None, "", "0", True)
    zero = Figure("events", 3, 0, "events", "0", False)

    assert absolute.ratio is None
    assert zero.ratio is None


def test_format_table_cells() -> None:
    rows = [
        ("serving", Figure("throughput", 1234.7, 1000, "req/s", ">= 1.0x", True)),
        ("drift", Figure("observe per row", 1.784, None, "µs", "< 10 µs", False)),
        ("console", Figure("key latency", 17, 7, "ms", "", None)),
    ]

    lines = results.format_table(rows).splitlines()

    # Columns are separated by at least two spaces, cells by at most one.
    cells = [re.split(r" {2,}", line) for line in lines]
    assert cells == [
        ["bench", "figure", "value", "baseline", "ratio", "target", "met"],
        ["serving", "throughput", "1,235 req/s", "1,000", "1.23x", ">= 1.0x", "yes"],
        ["drift", "observe per row", "1.78 µs", "-", "-", "< 10 µs", "NO"],
        ["console", "key latency", "17 ms", "7", "2.43x", "-", "-"],
    ]


def test_format_table_aligns_columns() -> None:
    rows = [
        ("a", Figure("short", 1, 1, "s", "", None)),
        ("longer-bench", Figure("a much longer name", 1, 1, "s", "", None)),
    ]

    lines = results.format_table(rows).splitlines()

    # The figure column starts after the longest bench name and two spaces.
    column = len("longer-bench") + 2
    assert lines[0].index("figure") == column
    assert lines[1].index("short") == column
    assert lines[2].index("a much longer name") == column
    assert lines[1].index("1 s") == lines[2].index("1 s")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (49097, "49,097"),
        (1234.7, "1,235"),
        (187000.4, "187,000"),
        (3.14159, "3.14"),
        (0.000123456, "0.000123"),
        (-2.5, "-2.5"),
    ],
)
def test_number_format(value: float, text: str) -> None:
    assert results._number(value) == text


def test_report_saves_rows_for_run_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))
    figures = [
        Figure("throughput", 2.0, 1.0, "req/s", ">= 1.0x", True),
        Figure("failed requests", 0, None, "", "0", True),
    ]

    status = results.report("serving", figures)

    assert status == 0
    assert [path.name for path in tmp_path.iterdir()] == ["serving.json"]
    assert json.loads((tmp_path / "serving.json").read_text())[0] == {
        "name": "throughput",
        "value": 2.0,
        "baseline": 1.0,
        "unit": "req/s",
        "target": ">= 1.0x",
        "met": True,
    }
    assert results.load(tmp_path / "serving.json") == figures
    assert "throughput" in capsys.readouterr().out


def test_report_status_is_1_on_missed_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))
    figures = [
        Figure("throughput", 0.9, 1.0, "req/s", ">= 1.0x", False),
        Figure("latency", 5, 4, "ms", "", None),
    ]

    assert results.report("serving", figures) == 1


def test_report_status_ignores_figures_without_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))

    assert results.report("console", [Figure("latency", 5, 4, "ms", "", None)]) == 0


def test_report_without_results_dir_saves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(results.RESULTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)

    status = results.report("drift", [Figure("cost", 1, 1, "µs", "<= 5x", True)])

    assert status == 0
    assert list(tmp_path.iterdir()) == []
