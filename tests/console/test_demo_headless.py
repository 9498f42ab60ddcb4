"""``rigdeck demo --headless``: the whole demo loop on two real agents."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from harness import REPO

from console.demo import run_headless
from console.demo.fleet import EXAMPLES
from console.demo.loop import Summary
from console.demo.replay import Window, error_rate

STAGES = (
    "version 1 trained",
    "version 1 live",
    "traffic before the shift",
    "drift detected",
    "alert raised",
    "version 2 trained on drift",
    "version 2 canary",
    "canary verdict",
    "version 2 promoted",
    "traffic after promotion",
    "rolled back",
    "rolled forward",
    "audit chain",
)


def _figure(output: str, name: str) -> str:
    match = re.search(rf"^  {re.escape(name)}\s+(.*)$", output, re.MULTILINE)
    assert match, f"no figure {name!r} in:\n{output}"
    return match.group(1)


def _percent(text: str) -> float:
    return float(text.split("%")[0]) / 100


@pytest.mark.slow
def test_headless_demo_completes_every_stage() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "console.cli", "demo", "--headless"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout

    assert result.returncode == 0, output + result.stderr
    assert "Every stage completed." in output
    summary = output[output.index("Stages (seconds since the start):") :]
    for stage in STAGES:
        assert f" {stage} " in summary, stage
    before = _percent(_figure(output, "live error before the shift"))
    shifted = _percent(_figure(output, "live error after the shift"))
    after = _percent(_figure(output, "live error after promotion"))
    assert shifted >= 2 * before
    assert after <= before + 0.01
    delay = int(_figure(output, "drift detection delay").split()[0])
    assert 0 < delay < 3000
    assert _figure(output, "canary verdict").startswith("passed")
    for host in ("demo-host-a", "demo-host-b"):
        assert "verifies" in _figure(output, f"audit {host}")
    print(summary)


@pytest.mark.slow
def test_headless_demo_fails_and_says_why(tmp_path: Path, capsys, monkeypatch) -> None:
    # A gate version 1 cannot pass: the loop stops at its release, exit 1.
    strict = tmp_path / "host-a.toml"
    text = (EXAMPLES / "host-a.toml").read_text()
    assert 'metric = "accuracy", min = 0.99 }' in text
    strict.write_text(
        text.replace(
            'metric = "accuracy", min = 0.99 }', 'metric = "accuracy", min = 0.99999 }'
        )
    )

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    status = run_headless(examples=(strict, EXAMPLES / "host-b.toml"))

    output = capsys.readouterr().out
    assert status == 1
    assert "FAILED: POST /api/v1/releases failed" in output
    assert "accuracy" in output
    assert "Every stage completed." not in output
    # A failed demo keeps its directory, with the agents' logs in it.
    (kept,) = tmp_path.glob("rigdeck-demo-*")
    assert (kept / "host-a" / "agent.log").exists()


def test_error_rate_over_windows() -> None:
    windows = [
        Window(rows_sent=250, rows=250, errors=5, versions={"1": 250}, received=0),
        Window(
            rows_sent=500, rows=250, errors=0, versions={"1": 200, "2": 50}, received=0
        ),
    ]

    assert error_rate(windows) == (0.01, 500)
    assert [w.only(1) for w in windows] == [True, False]
    assert windows[1].first_row == 250
    rate, rows = error_rate([])
    assert rows == 0
    assert math.isnan(rate)


def test_summary_names_the_failure() -> None:
    summary = Summary(figures={"total seconds": 12.5}, failure="run 2 ended failed")

    lines = summary.lines()

    assert "  total seconds  12.5" in lines
    assert lines[-1] == "FAILED: run 2 ended failed"
