"""``rigdeck-agent replay``: traffic with feedback labels through a real worker."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO, RunningAgent, wait_for

from agent.replay import ReplayError, Shift

MODEL = """
[serving]
port = 0

[[models]]
name = "shuttle"

[models.dataset]
plugin = "river"
options = { name = "Shuttle" }
target = "anomaly"

[models.recipe]
plugin = "tabular-mlp"
params = { max_epochs = 5, seed = 0 }
"""


def _replay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "replay", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _deploy_version_1(agent: RunningAgent) -> None:
    with agent.client("operator") as operator, agent.client("approver") as approver:
        run = operator.post("/api/v1/jobs/shuttle/trigger", json={}).json()
        wait_for(
            lambda: (
                operator.get(f"/api/v1/runs/{run['id']}").json()["state"] == "succeeded"
            ),
            timeout=120,
            what="version 1 to train",
        )
        release = operator.post(
            "/api/v1/releases",
            json={"model": "shuttle", "version": 1, "reason": "replay test"},
        ).json()
        approver.post(
            f"/api/v1/releases/{release['id']}/approve", json={"reason": "ok"}
        ).raise_for_status()
        wait_for(
            lambda: operator.get("/api/v1/serving").json()["state"] == "running",
            timeout=60,
            what="the serving worker",
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("f1:+0.5std@3000", Shift("f1", 0.5, True, 3000)),
        ("f2:-12@0", Shift("f2", -12.0, False, 0)),
    ],
)
def test_shift_parses(text: str, expected: Shift) -> None:
    assert Shift.parse(text) == expected


@pytest.mark.parametrize("text", ["f1+0.5std@3000", "f1:0.5@10", "f1:+x@1", "f1:+1"])
def test_invalid_shift_names_value(text: str) -> None:
    with pytest.raises(ReplayError, match=re.escape(f"Invalid shift {text!r}")):
        Shift.parse(text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "0"], "--rate must be more than 0 (got 0.0)"),
        (["--rate", "10", "--batch-rows", "-1"], "--batch-rows must be more than 0"),
        (["--rate", "10", "--shift", "f1=3"], "Invalid shift 'f1=3'"),
        (["--rate", "10", "--window", "0"], "--window must be more than 0 (got 0)"),
    ],
)
def test_bad_option_exits_1(args: list[str], message: str) -> None:
    result = _replay("shuttle", "--source", "Shuttle", "--url", "http://x", *args)

    assert result.returncode == 1, result.stderr
    assert message in result.stderr


def test_unreachable_url_exits_1() -> None:
    url = f"http://127.0.0.1:{_free_port()}"

    result = _replay("shuttle", "--source", "Shuttle", "--rate", "10", "--url", url)

    assert result.returncode == 1
    assert f"GET {url}/v2/models/shuttle failed" in result.stderr


def test_missing_serving_json_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nname = "x"\ndata_dir = "data"\n')

    result = _replay(
        "shuttle", "--source", "Shuttle", "--rate", "10", "--config", str(config)
    )

    assert result.returncode == 1
    assert "No serving URL in" in result.stderr
    assert "pass --url" in result.stderr


@pytest.mark.slow
def test_replay_sends_rows_labels_and_shift(agent_factory) -> None:
    agent = agent_factory(extra_config=MODEL)
    _deploy_version_1(agent)
    config = str(agent.config)
    url = json.loads((agent.data_dir / "serving.json").read_text())["url"]
    common = ("--rate", "5000", "--config", config)

    clean = _replay("shuttle", "--source", "Shuttle", *common, "--limit", "1000")
    shifted = _replay(
        "shuttle",
        "--source",
        "Shuttle",
        *common,
        "--limit",
        "1000",
        "--skip",
        "1000",
        "--batch-rows",
        "100",
        "--shift",
        "f1:+2std@500",
    )
    as_json = _replay(
        "shuttle", "--source", "Shuttle", *common, "--limit", "600", "--json"
    )
    unknown_model = _replay("nope", "--source", "Shuttle", "--rate", "10", "--url", url)
    unknown_source = _replay("shuttle", "--source", "Nowhere", *common)
    unknown_feature = _replay(
        "shuttle", "--source", "Shuttle", *common, "--shift", "f99:+1@0"
    )

    assert clean.returncode == 0, clean.stderr
    windows = [line for line in clean.stdout.splitlines() if line.startswith("rows")]
    assert [line.split()[1] for line in windows] == ["500", "1000"]
    assert all("versions v1:500" in line for line in windows)
    assert as_json.returncode == 0, as_json.stderr
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(line["rows_sent"], line["rows"]) for line in lines] == [
        (500, 500),
        (600, 100),
    ]
    assert [line["versions"] for line in lines] == [{"1": 500}, {"1": 100}]
    assert all(line["error_rate"] == line["errors"] / line["rows"] for line in lines)
    assert shifted.returncode == 0, shifted.stderr
    assert "shift f1 +2 std from row 500" in shifted.stdout
    first, second = (
        float(line.split()[3].rstrip("%"))
        for line in shifted.stdout.splitlines()
        if line.startswith("rows")
    )
    # Two std on f1 moves most rows across the model's boundary.
    assert second > 4 * max(first, 1.0)
    assert unknown_model.returncode == 1
    assert "does not serve a model named 'nope'" in unknown_model.stderr
    assert unknown_source.returncode == 1
    assert "Unknown source 'Nowhere'" in unknown_source.stderr
    assert unknown_feature.returncode == 1
    assert "feature 'f99'" in unknown_feature.stderr
    with sqlite3.connect(agent.data_dir / "store.db") as db:
        labelled = wait_for(
            lambda: db.execute("SELECT count(*) FROM feedback").fetchone()[0] >= 2000,
            timeout=30,
            what="2000 feedback labels in the store",
        )
    assert labelled
