"""bench/run_all.py on tiny fake benchmark scripts: outcomes, table, Markdown."""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path

import pytest
from bench_modules import BENCH_DIR, results, run_all

Figure = results.Figure
Outcome = run_all.Outcome

# The start of every fake script: it imports _results the way the real
# scripts do, with bench/ on sys.path.
PREAMBLE = f"""\
import sys
import time
sys.path.insert(0, {str(BENCH_DIR)!r})
from _results import Figure, report
"""

MET = 'Figure("speed", 2.0, 1.0, "req/s", ">= 1.0x", True)'
MISSED = 'Figure("latency", 3.0, 1.0, "ms", "<= 1.5x", False)'
NO_TARGET = 'Figure("memory", 50.0, 10.0, "MB", "", None)'


def write_script(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(PREAMBLE + textwrap.dedent(body))
    return path


def run_fake(tmp_path: Path, body: str, timeout_seconds: float = 60) -> Outcome:
    script = write_script(tmp_path, "fake", body)
    return run_all.run_script(script, tmp_path / "results", timeout_seconds)


# Finding and selecting scripts.


def test_discover_skips_private_and_runner(tmp_path: Path) -> None:
    for name in ("serving", "drift", "_results", "run_all"):
        (tmp_path / f"{name}.py").write_text("")
    (tmp_path / "notes.md").write_text("")

    scripts = run_all.discover(tmp_path)

    assert [script.name for script in scripts] == ["drift.py", "serving.py"]


def test_discover_defaults_to_bench_folder() -> None:
    names = [script.name for script in run_all.discover()]

    assert "drift.py" in names
    assert "run_all.py" not in names
    assert "_results.py" not in names


def test_select_by_stem_or_file_name(tmp_path: Path) -> None:
    scripts = [tmp_path / "agent_idle.py", tmp_path / "drift.py", tmp_path / "x.py"]

    assert run_all.select(scripts, []) == scripts
    assert run_all.select(scripts, ["x.py", "drift"]) == scripts[1:]


def test_select_unknown_name_raises(tmp_path: Path) -> None:
    scripts = [tmp_path / "drift.py", tmp_path / "serving.py"]

    with pytest.raises(ValueError, match="No benchmark is named drfit.") as raised:
        run_all.select(scripts, ["drfit"])

    assert "Choose from: drift, serving." in str(raised.value)


# Running one script.


def test_run_script_collects_figures(tmp_path: Path) -> None:
    outcome = run_fake(
        tmp_path, f'sys.exit(report("fake bench", [{MET}, {NO_TARGET}]))\n'
    )

    assert outcome.script == "fake.py"
    assert outcome.returncode == 0
    assert outcome.problem is None
    assert outcome.figures == [
        ("fake bench", Figure("speed", 2.0, 1.0, "req/s", ">= 1.0x", True)),
        ("fake bench", Figure("memory", 50.0, 10.0, "MB", "", None)),
    ]
    assert outcome.seconds > 0


def test_run_script_missed_target_is_no_failure(tmp_path: Path) -> None:
    outcome = run_fake(tmp_path, f'sys.exit(report("fake", [{MET}, {MISSED}]))\n')

    assert outcome.returncode == 1
    assert outcome.problem is None
    assert [figure.met for _, figure in outcome.figures] == [True, False]
    assert run_all.exit_status([outcome]) == 1


def test_run_script_crash_without_figures(tmp_path: Path) -> None:
    outcome = run_fake(tmp_path, 'raise RuntimeError("the agent did not start")\n')

    assert outcome.returncode == 1
    assert outcome.figures == []
    assert outcome.problem == "exited with status 1 and saved no figures"


def test_run_script_clean_exit_without_figures(tmp_path: Path) -> None:
    outcome = run_fake(tmp_path, 'print("forgot to report")\n')

    assert outcome.returncode == 0
    assert outcome.problem == "exited with status 0 and saved no figures"


def test_run_script_error_status_with_targets_met(tmp_path: Path) -> None:
    outcome = run_fake(tmp_path, f'report("fake", [{MET}])\nsys.exit(2)\n')

    assert len(outcome.figures) == 1
    assert outcome.problem == (
        "exited with status 2 although no figure missed its target"
    )


def test_run_script_killed_by_signal(tmp_path: Path) -> None:
    outcome = run_fake(tmp_path, "import os, signal\nos.kill(os.getpid(), 9)\n")

    assert outcome.returncode == -9
    assert outcome.problem == "was killed by signal 9 and saved no figures"


def test_run_script_unreadable_results(tmp_path: Path) -> None:
    body = """\
    import os
    path = os.path.join(os.environ["RIGDECK_BENCH_RESULTS"], "fake.json")
    open(path, "w").write("not json")
    """

    outcome = run_fake(tmp_path, body)

    assert outcome.figures == []
    assert outcome.problem.startswith("saved results that could not be read")


def test_run_script_timeout_stops_script(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned-up"
    body = f"""\
    try:
        time.sleep(60)
    finally:
        open({str(marker)!r}, "w").close()
    """

    outcome = run_fake(tmp_path, body, timeout_seconds=1)

    assert outcome.returncode is None
    assert outcome.problem == "timed out after 1 s"
    assert outcome.seconds < 30
    # SIGINT came first, so the script's finally block ran.
    assert marker.exists()


def test_run_script_sets_results_dir(tmp_path: Path) -> None:
    body = """\
    import os
    print("results in", os.environ["RIGDECK_BENCH_RESULTS"])
    report("fake", [])
    """

    outcome = run_fake(tmp_path, body)

    assert (tmp_path / "results" / "fake.json").read_text() == "[]"
    assert outcome.problem == "exited with status 0 and saved no figures"


# Tables and the summary.


def outcomes_for_tables() -> list[Outcome]:
    return [
        Outcome(
            "serving.py",
            12.0,
            1,
            [
                ("serving", Figure("throughput", 2400, 2000, "req/s", ">= 1.0x", True)),
                ("serving", Figure("p99 | 64 rows", 30, 20, "ms", "<= 1.5x", False)),
            ],
        ),
        Outcome(
            "drift.py",
            95.4,
            0,
            [("drift", Figure("observe per row", 1.78, None, "µs", "< 10 µs", True))],
        ),
        Outcome(
            "console_fleet.py",
            3.0,
            1,
            [("console_fleet", Figure("key median", 17, 7, "ms", "", None))],
        ),
        Outcome(
            "agent_idle.py", 2.0, 2, [], "exited with status 2 and saved no figures"
        ),
    ]


def test_summary_counts_targets_and_failures() -> None:
    outcomes = outcomes_for_tables()

    assert run_all.summary(outcomes) == (
        "2 of 3 figures with a target met it; 1 of 4 benchmark scripts failed."
    )
    assert run_all.summary(outcomes[1:2]) == "1 of 1 figures with a target met it."


def test_exit_status_cases() -> None:
    serving, drift, console, idle = outcomes_for_tables()

    assert run_all.exit_status([drift]) == 0
    assert run_all.exit_status([drift, console]) == 0
    assert run_all.exit_status([drift, serving]) == 1
    assert run_all.exit_status([drift, idle]) == 1
    assert run_all.exit_status([]) == 0


def test_text_report_lists_failed_scripts() -> None:
    text = run_all.text_report(outcomes_for_tables())
    lines = text.splitlines()

    assert lines[0].split()[:3] == ["bench", "figure", "value"]
    assert lines[1].startswith("serving ")
    assert "2,400 req/s" in lines[1]
    assert lines[4].startswith("console_fleet ")
    assert lines[6] == (
        "FAILED agent_idle.py: exited with status 2 and saved no figures"
    )
    assert lines[-1] == (
        "2 of 3 figures with a target met it; 1 of 4 benchmark scripts failed."
    )


def test_text_report_without_figures() -> None:
    outcome = Outcome("drift.py", 1.0, None, [], "timed out after 1 s")

    text = run_all.text_report([outcome])

    assert text.splitlines() == [
        "No figures were saved.",
        "",
        "FAILED drift.py: timed out after 1 s",
        "",
        "0 of 0 figures with a target met it; 1 of 1 benchmark scripts failed.",
    ]


def test_markdown_table_rows() -> None:
    rows = [row for outcome in outcomes_for_tables() for row in outcome.figures]

    table = run_all.markdown_table(rows)

    assert table.splitlines() == [
        "| bench | figure | value | baseline | ratio | target | met |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
        "| serving | throughput | 2,400 req/s | 2,000 | 1.20x | >= 1.0x | yes |",
        "| serving | p99 \\| 64 rows | 30 ms | 20 | 1.50x | <= 1.5x | NO |",
        "| drift | observe per row | 1.78 µs | - | - | < 10 µs | yes |",
        "| console_fleet | key median | 17 ms | 7 | 2.43x | - | - |",
    ]


def test_markdown_report_parts() -> None:
    now = datetime.datetime(2026, 12, 4, 18, 5, tzinfo=datetime.UTC)

    text = run_all.markdown_report(
        outcomes_for_tables(),
        ".venv/bin/python bench/run_all.py --markdown docs/benchmarks.md",
        "Example CPU, 2 logical CPUs",
        now,
    )
    paragraphs = text.split("\n\n")

    assert paragraphs[0] == "Measured on 2026-12-04 18:05 UTC with:"
    assert paragraphs[1] == (
        "```sh\n.venv/bin/python bench/run_all.py --markdown docs/benchmarks.md\n```"
    )
    assert paragraphs[2] == "Machine: Example CPU, 2 logical CPUs."
    assert paragraphs[3] == (
        "Run time: serving.py 12 s, drift.py 95 s, console_fleet.py 3 s, "
        "agent_idle.py 2 s."
    )
    assert paragraphs[4].startswith("| bench | figure |")
    assert paragraphs[5] == (
        "- **failed** `agent_idle.py`: exited with status 2 and saved no figures"
    )
    assert paragraphs[6] == (
        "2 of 3 figures with a target met it; 1 of 4 benchmark scripts failed.\n"
    )


# Writing the Markdown file.


def test_write_markdown_keeps_text_above_marker(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\nWhat each one measures.\n<!-- table -->\nold\n")

    run_all.write_markdown(path, "new table\n")
    first = path.read_text()
    run_all.write_markdown(path, "new table\n")

    expected = "# Benchmarks\n\nWhat each one measures.\n<!-- table -->\n\nnew table\n"
    assert first == expected
    assert path.read_text() == expected


def test_write_markdown_creates_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"

    run_all.write_markdown(path, "table\n")

    assert path.read_text() == "# Benchmarks\n\n<!-- table -->\n\ntable\n"


def test_write_markdown_without_marker_raises(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text("# Hand-written page\n")

    with pytest.raises(ValueError, match="has no line '<!-- table -->'. Add one"):
        run_all.write_markdown(path, "table\n")

    assert path.read_text() == "# Hand-written page\n"


def test_markdown_path_problem_cases(tmp_path: Path) -> None:
    marked = tmp_path / "marked.md"
    marked.write_text("Intro.\n<!-- table -->\nold table\n")
    unmarked = tmp_path / "unmarked.md"
    unmarked.write_text("# Hand-written page\n")

    assert run_all.markdown_path_problem(marked) is None
    assert run_all.markdown_path_problem(tmp_path / "new.md") is None
    assert run_all.markdown_path_problem(unmarked) == (
        f"--markdown: {unmarked} has no line '<!-- table -->'. Add one where the "
        "generated table should start, or name a new file."
    )
    assert run_all.markdown_path_problem(tmp_path / "missing" / "a.md") == (
        f"--markdown: the folder {tmp_path / 'missing'} does not exist."
    )


def test_main_rejects_unmarked_file_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    ran = tmp_path / "ran"
    write_script(tmp_path, "fast", f"open({str(ran)!r}, 'w').close()\n")
    monkeypatch.setattr(run_all, "BENCH_DIR", tmp_path)
    unmarked = tmp_path / "unmarked.md"
    unmarked.write_text("# Hand-written page\n")

    with pytest.raises(SystemExit) as raised:
        run_all.main(["run_all.py", "--markdown", str(unmarked)])

    assert raised.value.code == 2
    assert "has no line '<!-- table -->'" in capfd.readouterr().err
    assert not ran.exists()
    assert unmarked.read_text() == "# Hand-written page\n"


# The machine and the command.


def test_describe_machine_parts() -> None:
    machine = run_all.describe_machine()

    assert " logical CPUs, " in machine
    assert " GiB memory, " in machine
    assert "GPU" in machine
    assert ", Python 3." in machine
    assert ", torch " in machine
    assert ", river " in machine


def test_describe_command_relative_to_repository() -> None:
    argv = [str(BENCH_DIR / "run_all.py"), "--only", "drift", "--markdown", "a b.md"]

    command = run_all.describe_command(argv)

    assert command.endswith(" bench/run_all.py --only drift --markdown 'a b.md'")


# The whole command on a folder of fake scripts.


def test_main_prints_table_and_writes_markdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    write_script(bench, "fast", f'sys.exit(report("fast", [{MET}]))\n')
    write_script(bench, "slow", f'sys.exit(report("slow", [{MISSED}]))\n')
    write_script(bench, "broken", 'raise SystemExit("cannot start")\n')
    monkeypatch.setattr(run_all, "BENCH_DIR", bench)
    markdown = tmp_path / "benchmarks.md"
    markdown.write_text("Intro.\n<!-- table -->\n")

    status = run_all.main(
        [
            "run_all.py",
            "--only",
            "fast",
            "--only",
            "broken",
            "--markdown",
            str(markdown),
        ]
    )
    output = capfd.readouterr().out

    assert status == 1
    assert "== [1/2] broken.py" in output
    assert "== [2/2] fast.py" in output
    assert "slow.py" not in output
    assert "FAILED broken.py: exited with status 1 and saved no figures" in output
    assert output.rstrip().endswith(f"Wrote {markdown}.")
    written = markdown.read_text()
    assert written.startswith("Intro.\n<!-- table -->\n\nMeasured on ")
    assert "| fast | speed | 2 req/s | 1 | 2.00x | >= 1.0x | yes |" in written
    assert "--only fast --only broken --markdown" in written
    assert written.endswith(
        "1 of 1 figures with a target met it; 1 of 2 benchmark scripts failed.\n"
    )


def test_main_all_targets_met(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    write_script(tmp_path, "fast", f'sys.exit(report("fast", [{MET}, {NO_TARGET}]))\n')
    monkeypatch.setattr(run_all, "BENCH_DIR", tmp_path)

    status = run_all.main(["run_all.py"])
    output = capfd.readouterr().out

    assert status == 0
    assert "== fast.py finished in " in output
    assert ": 2 figures, no target missed" in output
    assert output.rstrip().endswith("1 of 1 figures with a target met it.")
