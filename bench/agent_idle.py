"""Measure an idle agent's memory and CPU against a bare Python interpreter.

Starts a real agent (``rigdeck-agent run``) on a temporary configuration
made by ``rigdeck-agent init`` and, next to it, a bare ``python -c`` process
that only sleeps: the interpreter's floor. After a settling period both are
measured over the same window. RSS is the peak of one reading per second,
and CPU is the process's user+system time over the window's wall time, as a
percentage of one core.

Targets at the default 2 s telemetry interval: RSS under 100 MB (10^6
bytes) and CPU under 1 % of one core. Exits 1 when a target is missed and
2 when the agent does not stay up.

    .venv/bin/python bench/agent_idle.py [--seconds 60] [--settle-seconds 10]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from _results import Figure, report

REPO_ROOT = Path(__file__).resolve().parents[1]
RSS_TARGET_BYTES = 100 * 10**6
CPU_TARGET_PERCENT = 1.0
STOP_TIMEOUT_SECONDS = 15.0


@dataclass
class Usage:
    peak_rss_bytes: int
    cpu_percent: float


def agent_command() -> list[str]:
    """Return the installed ``rigdeck-agent`` script, else ``python -m agent.cli``."""
    script = Path(sys.executable).parent / "rigdeck-agent"
    if script.exists():
        return [str(script)]
    found = shutil.which("rigdeck-agent")
    if found:
        return [found]
    return [sys.executable, "-m", "agent.cli"]


def write_config(directory: Path) -> Path:
    # Port 0 lets the agent pick a free loopback port, so a running agent
    # on the default port does not collide with this one.
    subprocess.run(
        [*agent_command(), "init", str(directory), "--port", "0", "--name", "bench"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return directory / "agent.toml"


def measure(processes: list[psutil.Process], seconds: float) -> list[Usage]:
    """Measure every process over the same window of ``seconds``."""
    start_wall = time.monotonic()
    start_cpu = [_cpu_seconds(process) for process in processes]
    peaks = [0] * len(processes)
    while True:
        for position, process in enumerate(processes):
            peaks[position] = max(peaks[position], process.memory_info().rss)
        remaining = start_wall + seconds - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(1.0, remaining))
    wall = time.monotonic() - start_wall
    return [
        Usage(peak, 100 * (_cpu_seconds(process) - cpu) / wall)
        for process, cpu, peak in zip(processes, start_cpu, peaks, strict=True)
    ]


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def figures(agent: Usage, baseline: Usage) -> list[Figure]:
    """Return the agent's figures against the bare interpreter's."""
    return [
        Figure(
            "RSS, peak",
            agent.peak_rss_bytes / 1e6,
            baseline.peak_rss_bytes / 1e6,
            "MB",
            f"< {RSS_TARGET_BYTES / 1e6:g} MB",
            agent.peak_rss_bytes < RSS_TARGET_BYTES,
        ),
        Figure(
            "CPU",
            agent.cpu_percent,
            baseline.cpu_percent,
            "% of one core",
            f"< {CPU_TARGET_PERCENT:g} %",
            agent.cpu_percent < CPU_TARGET_PERCENT,
        ),
    ]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run(seconds: float, settle_seconds: float) -> int:
    with tempfile.TemporaryDirectory(prefix="rigdeck-bench-") as temporary:
        directory = Path(temporary)
        config = write_config(directory)
        log_path = directory / "agent.log"
        with log_path.open("wb") as log:
            agent = subprocess.Popen(
                [*agent_command(), "run", "--config", str(config)],
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            baseline = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(1e9)"]
            )
            try:
                return _measure_running(
                    agent, baseline, seconds, settle_seconds, log_path
                )
            finally:
                stop(agent)
                stop(baseline)


def _measure_running(
    agent: subprocess.Popen,
    baseline: subprocess.Popen,
    seconds: float,
    settle_seconds: float,
    log_path: Path,
) -> int:
    print(f"agent: {' '.join(agent.args)} (pid {agent.pid})")
    print(f"settling {settle_seconds:g} s, then measuring {seconds:g} s")
    time.sleep(settle_seconds)
    if agent.poll() is not None:
        return _agent_died(agent, log_path)
    processes = [psutil.Process(agent.pid), psutil.Process(baseline.pid)]
    try:
        usages = measure(processes, seconds)
    except psutil.NoSuchProcess:
        agent.wait()
        return _agent_died(agent, log_path)
    return report("agent_idle", figures(*usages))


def _agent_died(agent: subprocess.Popen, log_path: Path) -> int:
    tail = log_path.read_text(errors="replace")[-4000:]
    print(f"The agent exited with status {agent.returncode}. Its log ends:\n{tail}")
    return 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="Measuring window, in seconds."
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=10.0,
        help="Seconds the agent runs before the window starts.",
    )
    arguments = parser.parse_args()
    return run(arguments.seconds, arguments.settle_seconds)


if __name__ == "__main__":
    sys.exit(main())
