"""Run the benchmarks in bench/ and print one table of all their figures.

Every script in this folder whose name does not start with "_" runs in
turn, in a fresh Python process, with its output shown as it runs. Each
one reports its figures through ``_results.report``, which saves them as
JSON in the directory named by ``RIGDECK_BENCH_RESULTS``. Every script
gets a directory of its own, so its figures are found whatever bench name
it reports them under. The combined table lists each figure, its baseline
from the same run, the ratio and the target. A script that crashed, timed
out or saved no figures is listed below the table.

``--markdown PATH`` also writes the table, the machine and the command to
PATH. Everything up to the line ``<!-- table -->`` in PATH is kept, and
the rest is replaced.

Exits 1 when a figure missed its target or a script failed, else 0.

    .venv/bin/python bench/run_all.py [--only drift] [--markdown docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from _results import RESULTS_ENV, Figure, cells, format_table, load

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
MARKER = "<!-- table -->"
DEFAULT_TIMEOUT_SECONDS = 3600.0
# Seconds a script has to clean up (stop the agents it started) after
# SIGINT, before its process group is killed.
INTERRUPT_GRACE_SECONDS = 30.0


@dataclass
class Outcome:
    """The result of one benchmark script in this run."""

    script: str
    seconds: float
    returncode: int | None  # None when the script timed out
    figures: list[tuple[str, Figure]] = field(default_factory=list)
    problem: str | None = None  # why the script counts as failed, or None


def discover(directory: Path | None = None) -> list[Path]:
    """Return the benchmark scripts in ``directory`` (default bench/), by name."""
    directory = BENCH_DIR if directory is None else directory
    return sorted(
        path
        for path in directory.glob("*.py")
        if not path.name.startswith("_") and path.name != Path(__file__).name
    )


def select(scripts: list[Path], names: list[str]) -> list[Path]:
    """Return the scripts named in ``names`` ("drift" or "drift.py"), or all.

    Raises:
        ValueError: a name matches no script.
    """
    if not names:
        return scripts
    by_name = {script.stem: script for script in scripts}
    unknown = [name for name in names if name.removesuffix(".py") not in by_name]
    if unknown:
        raise ValueError(
            f"No benchmark is named {', '.join(unknown)}. "
            f"Choose from: {', '.join(sorted(by_name))}."
        )
    selected = {name.removesuffix(".py") for name in names}
    return [script for script in scripts if script.stem in selected]


# Running the scripts.


def run_script(script: Path, results_dir: Path, timeout_seconds: float) -> Outcome:
    """Run ``script`` with its output shown, and collect the figures it saved."""
    results_dir.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, RESULTS_ENV: str(results_dir)}
    # -u shows the script's output as it runs even when this runner's output
    # goes to a pipe. Unlike PYTHONUNBUFFERED, it does not reach the agents
    # and servers the script starts, so their measured costs stay the same.
    command = [sys.executable, "-u", str(script)]
    started = time.monotonic()
    returncode = _run_process(command, environment, timeout_seconds)
    outcome = Outcome(script.name, time.monotonic() - started, returncode)
    try:
        outcome.figures = collect(results_dir)
    except (ValueError, TypeError) as error:
        outcome.problem = f"saved results that could not be read ({error})"
        return outcome
    outcome.problem = _problem(outcome, timeout_seconds)
    return outcome


def _run_process(
    command: list[str], environment: dict[str, str], timeout_seconds: float
) -> int | None:
    """Run ``command`` in its own process group; return its status, None on timeout.

    On a timeout or a KeyboardInterrupt, the whole group (the script and the
    agents or servers it started) gets SIGINT so the script can clean up,
    then SIGKILL after ``INTERRUPT_GRACE_SECONDS``.
    """
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=environment, start_new_session=True
    )
    try:
        return process.wait(timeout_seconds)
    except subprocess.TimeoutExpired:
        _stop_group(process)
        return None
    except KeyboardInterrupt:
        _stop_group(process)
        raise


def _stop_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(INTERRUPT_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def collect(results_dir: Path) -> list[tuple[str, Figure]]:
    """Return (bench, figure) rows from every ``<bench>.json`` in ``results_dir``.

    Raises:
        ValueError: a file is not JSON.
        TypeError: a file's rows do not have ``Figure``'s fields.
    """
    rows = []
    for path in sorted(results_dir.glob("*.json")):
        rows.extend((path.stem, figure) for figure in load(path))
    return rows


def _problem(outcome: Outcome, timeout_seconds: float) -> str | None:
    """Return why ``outcome`` counts as a failed script, or None."""
    status = outcome.returncode
    if status is None:
        return f"timed out after {timeout_seconds:g} s"
    if status < 0:
        ended = f"was killed by signal {-status}"
    else:
        ended = f"exited with status {status}"
    if not outcome.figures:
        return f"{ended} and saved no figures"
    missed = any(figure.met is False for _, figure in outcome.figures)
    if status != 0 and not missed:
        return f"{ended} although no figure missed its target"
    return None


# Reporting.


def summary(outcomes: list[Outcome]) -> str:
    """Return the last line: figures that met their targets, scripts that failed."""
    figures = [figure for outcome in outcomes for _, figure in outcome.figures]
    with_target = [figure for figure in figures if figure.met is not None]
    met = sum(figure.met is True for figure in with_target)
    failed = sum(outcome.problem is not None for outcome in outcomes)
    line = f"{met} of {len(with_target)} figures with a target met it"
    if failed:
        line += f"; {failed} of {len(outcomes)} benchmark scripts failed"
    return line + "."


def exit_status(outcomes: list[Outcome]) -> int:
    """Return 1 when a figure missed its target or a script failed, else 0."""
    for outcome in outcomes:
        if outcome.problem is not None:
            return 1
        if any(figure.met is False for _, figure in outcome.figures):
            return 1
    return 0


def text_report(outcomes: list[Outcome]) -> str:
    """Return the combined table, one line per failed script, and the summary."""
    rows = [row for outcome in outcomes for row in outcome.figures]
    parts = [format_table(rows)] if rows else ["No figures were saved."]
    failures = [
        f"FAILED {outcome.script}: {outcome.problem}"
        for outcome in outcomes
        if outcome.problem is not None
    ]
    if failures:
        parts.append("\n".join(failures))
    parts.append(summary(outcomes))
    return "\n\n".join(parts)


def markdown_table(rows: list[tuple[str, Figure]]) -> str:
    """Return ``rows`` as a Markdown table with the columns of ``format_table``."""
    lines = [
        "| bench | figure | value | baseline | ratio | target | met |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for bench, figure in rows:
        row = cells(bench, figure)
        escaped = [cell.replace("|", "\\|") for cell in row]
        lines.append("| " + " | ".join(escaped) + " |")
    return "\n".join(lines)


def markdown_report(
    outcomes: list[Outcome], command: str, machine: str, now: datetime.datetime
) -> str:
    """Return the Markdown that replaces everything after the marker line."""
    rows = [row for outcome in outcomes for row in outcome.figures]
    timings = ", ".join(
        f"{outcome.script} {outcome.seconds:.0f} s" for outcome in outcomes
    )
    parts = [
        f"Measured on {now:%Y-%m-%d %H:%M} UTC with:",
        f"```sh\n{command}\n```",
        f"Machine: {machine}.",
        f"Run time: {timings}.",
        markdown_table(rows) if rows else "No figures were saved.",
    ]
    failures = [
        f"- **failed** `{outcome.script}`: {outcome.problem}"
        for outcome in outcomes
        if outcome.problem is not None
    ]
    if failures:
        parts.append("\n".join(failures))
    parts.append(summary(outcomes))
    return "\n\n".join(parts) + "\n"


def write_markdown(path: Path, generated: str) -> None:
    """Replace everything after the marker line in ``path`` with ``generated``.

    A missing file is created with a heading and the marker line.

    Raises:
        ValueError: ``path`` exists but has no marker line.
    """
    if not path.exists():
        path.write_text(f"# Benchmarks\n\n{MARKER}\n\n{generated}")
        return
    lines = path.read_text().splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.strip() == MARKER:
            intro = "".join(lines[: index + 1]).rstrip("\n")
            path.write_text(f"{intro}\n\n{generated}")
            return
    raise ValueError(
        f"{path} has no line '{MARKER}'. Add one where the generated table "
        "should start, or write the table to a new file."
    )


def markdown_path_problem(path: Path) -> str | None:
    """Return why ``write_markdown`` would fail on ``path``, or None."""
    if not path.parent.is_dir():
        return f"--markdown: the folder {path.parent} does not exist."
    if path.exists() and not any(
        line.strip() == MARKER for line in path.read_text().splitlines()
    ):
        return (
            f"--markdown: {path} has no line '{MARKER}'. Add one where the "
            "generated table should start, or name a new file."
        )
    return None


# The machine and the command.


def describe_machine() -> str:
    """Return the CPU, memory, GPU and software versions in one line."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    parts = [
        f"{_cpu_model()}, {os.cpu_count()} logical CPUs",
        f"{memory_gib:.1f} GiB memory",
        _gpus(),
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
        f"torch {_version('torch')}",
        f"river {_version('river')}",
    ]
    return ", ".join(parts)


def _cpu_model() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def _gpus() -> str:
    """Return the GPUs ``nvidia-smi`` lists, as "2 x NAME, MEMORY", or "no GPU"."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return "no GPU"
    try:
        result = subprocess.run(
            [executable, "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"no GPU (nvidia-smi failed: {error})"
    counts = Counter(line.strip() for line in result.stdout.splitlines() if line)
    if not counts:
        return "no GPU"
    return "; ".join(f"{count} x {gpu}" for gpu, count in counts.items())


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def describe_command(argv: list[str]) -> str:
    """Return the command line of this run, with paths relative to the repository."""
    return shlex.join([_relative(sys.executable), _relative(argv[0]), *argv[1:]])


def _relative(path: str) -> str:
    absolute = Path(os.path.abspath(path))
    if absolute.is_relative_to(REPO_ROOT):
        return str(absolute.relative_to(REPO_ROOT))
    return path


# The command line.


def _parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="Run only this benchmark, e.g. 'drift'. Repeat to run several. "
        "Without it, every benchmark runs.",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="PATH",
        help=f"Also write the table, machine and command to PATH after '{MARKER}'.",
    )
    parser.add_argument(
        "--timeout-seconds",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"Seconds each script may run (default {DEFAULT_TIMEOUT_SECONDS:g}).",
    )
    arguments = parser.parse_args(argv[1:])
    if arguments.timeout_seconds <= 0:
        parser.error(
            f"--timeout-seconds must be positive, not {arguments.timeout_seconds:g}."
        )
    try:
        arguments.scripts = select(discover(), arguments.only)
    except ValueError as error:
        parser.error(str(error))
    if arguments.markdown is not None:
        # Checked before the benchmarks run, which can take an hour.
        problem = markdown_path_problem(arguments.markdown)
        if problem is not None:
            parser.error(problem)
    return arguments


def run_scripts(scripts: list[Path], timeout_seconds: float) -> list[Outcome]:
    """Run ``scripts`` in turn, printing which one runs and how long it took."""
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="rigdeck-bench-results-") as directory:
        for position, script in enumerate(scripts, start=1):
            print(f"\n== [{position}/{len(scripts)}] {script.name}", flush=True)
            outcome = run_script(script, Path(directory) / script.stem, timeout_seconds)
            print(
                f"== {script.name} finished in {outcome.seconds:.1f} s: "
                f"{_status_text(outcome)}",
                flush=True,
            )
            outcomes.append(outcome)
    return outcomes


def _status_text(outcome: Outcome) -> str:
    if outcome.problem is not None:
        return f"FAILED, {outcome.problem}"
    missed = sum(figure.met is False for _, figure in outcome.figures)
    if missed:
        return f"{missed} of {len(outcome.figures)} figures missed their targets"
    return f"{len(outcome.figures)} figures, no target missed"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    arguments = _parse_arguments(argv)
    try:
        outcomes = run_scripts(arguments.scripts, arguments.timeout_seconds)
    except KeyboardInterrupt:
        print("\nInterrupted, so no table was printed.", file=sys.stderr)
        return 130
    print()
    print(text_report(outcomes))
    if arguments.markdown is not None:
        generated = markdown_report(
            outcomes,
            describe_command(argv),
            describe_machine(),
            datetime.datetime.now(datetime.UTC),
        )
        try:
            write_markdown(arguments.markdown, generated)
        except (ValueError, OSError) as error:
            print(f"Writing {arguments.markdown} failed: {error}", file=sys.stderr)
            return 1
        print(f"Wrote {arguments.markdown}.")
    return exit_status(outcomes)


if __name__ == "__main__":
    sys.exit(main())
