"""One row per benchmark figure, shared by every script in bench/.

Each script builds its ``Figure`` rows and ends with ``sys.exit(report(...))``.
``report`` prints the script's table, and when ``bench/run_all.py`` runs it
(environment variable ``RIGDECK_BENCH_RESULTS`` names a directory) also
writes the rows as ``<bench>.json`` there, so that ``run_all.py`` prints
one table of every figure.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS_ENV = "RIGDECK_BENCH_RESULTS"


@dataclass(frozen=True)
class Figure:
    """One measured figure against its baseline from the same run.

    Attributes:
        name: what was measured, e.g. "throughput, 64-row batches".
        value: rigdeck's figure.
        baseline: the baseline's figure in the same run, or None where the
            target is absolute (e.g. "failed requests: 0").
        unit: the unit of ``value`` and ``baseline``, e.g. "req/s", "ms".
        target: the target in words, e.g. ">= 1.0x" or "0".
        met: whether the target holds; None for a figure with no target.
    """

    name: str
    value: float
    baseline: float | None
    unit: str
    target: str
    met: bool | None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline


HEADER = ("bench", "figure", "value", "baseline", "ratio", "target", "met")


def cells(bench: str, figure: Figure) -> tuple[str, ...]:
    """Return one row's cells, in the order of ``HEADER``."""
    return (
        bench,
        figure.name,
        f"{_number(figure.value)} {figure.unit}".strip(),
        "-" if figure.baseline is None else _number(figure.baseline),
        "-" if figure.ratio is None else f"{figure.ratio:.2f}x",
        figure.target or "-",
        {True: "yes", False: "NO", None: "-"}[figure.met],
    )


def format_table(rows: list[tuple[str, Figure]]) -> str:
    """Return a plain-text table of (bench, figure) rows."""
    lines = [HEADER, *(cells(bench, figure) for bench, figure in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(line, widths, strict=True)
        ).rstrip()
        for line in lines
    )


def report(bench: str, figures: list[Figure]) -> int:
    """Print ``figures``, save them for run_all.py, return the exit status.

    The status is 1 when a figure missed its target, else 0.
    """
    print()
    print(format_table([(bench, figure) for figure in figures]))
    directory = os.environ.get(RESULTS_ENV)
    if directory:
        path = Path(directory) / f"{bench}.json"
        path.write_text(json.dumps([asdict(figure) for figure in figures], indent=1))
    return 1 if any(figure.met is False for figure in figures) else 0


def load(path: Path) -> list[Figure]:
    """Read the figures one script saved."""
    return [Figure(**row) for row in json.loads(path.read_text())]


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"
