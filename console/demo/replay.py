"""Live traffic for the demo: ``rigdeck-agent replay --json`` as a subprocess.

The replayer sends held-out rows in file order with their feedback
labels and prints one JSON line per window of rows. ``Replay`` collects
those windows, so that the loop can measure the live error rate of each
version before and after each step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from dataclasses import dataclass

from console.demo.fleet import stop_with_parent
from console.demo.people import DemoHost

logger = logging.getLogger(__name__)

# 10 rows per request, so that a 15 s canary at 150 rows/s gets some 50
# requests for its latency p95. One progress window per 250 rows.
REPLAY_BATCH_ROWS = 10
REPLAY_WINDOW_ROWS = 250


@dataclass
class Window:
    """One progress line of the replayer (see ``rigdeck-agent replay --json``)."""

    rows_sent: int
    rows: int
    errors: int
    versions: dict[str, int]
    received: float

    @property
    def first_row(self) -> int:
        return self.rows_sent - self.rows

    def only(self, version: int) -> bool:
        return set(self.versions) == {str(version)}


class Replay:
    """``rigdeck-agent replay --json`` as a subprocess, its windows collected.

    When the held-out rows run out before the loop ends, the replay starts
    again from the first held-out row, with the shift from its first row.
    """

    def __init__(self, host: DemoHost, rate: float, shift: str | None) -> None:
        self.host = host
        self.rate = rate
        self.shift = shift
        self.windows: list[Window] = []
        self.rounds = 0
        self.failure: str | None = None
        self.log_path = host.workdir / "replay.log"
        self._task: asyncio.Task | None = None
        self._process: asyncio.subprocess.Process | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def kill(self) -> None:
        """Stop the replayer process now, from outside the event loop."""
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()

    async def _run(self) -> None:
        with self.log_path.open("a") as log:
            while True:
                shift = self.shift
                if shift and self.rounds:
                    shift = shift.split("@")[0] + "@0"
                self._process = await asyncio.create_subprocess_exec(
                    *self._command(shift),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    preexec_fn=stop_with_parent,
                )
                offset = sum(window.rows for window in self.windows)
                assert self._process.stdout is not None
                async for raw in self._process.stdout:
                    log.write(raw.decode())
                    log.flush()
                    line = json.loads(raw)
                    self.windows.append(
                        Window(
                            rows_sent=offset + line["rows_sent"],
                            rows=line["rows"],
                            errors=line["errors"],
                            versions=line["versions"],
                            received=time.monotonic(),
                        )
                    )
                code = await self._process.wait()
                if code != 0:
                    self.failure = self._describe_failure(code)
                    logger.warning("%s", self.failure)
                    return
                self.rounds += 1

    def _describe_failure(self, code: int) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        errors = [line for line in lines if not line.startswith("{")]
        last = errors[-1] if errors else "no message"
        return (
            f"the replay to {self.host.name} exited with {code}: {last} "
            f"(log: {self.log_path})"
        )

    def _command(self, shift: str | None) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "agent.cli",
            "replay",
            self.host.model,
            "--source",
            self.host.source,
            "--seed",
            "-1",
            "--skip",
            str(self.host.held_out_from),
            "--rate",
            str(self.rate),
            "--batch-rows",
            str(REPLAY_BATCH_ROWS),
            "--window",
            str(REPLAY_WINDOW_ROWS),
            "--config",
            str(self.host.config),
            "--json",
        ]
        if shift:
            command += ["--shift", shift]
        return command

    def rows_sent(self) -> int:
        return self.windows[-1].rows_sent if self.windows else 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()


def error_rate(windows: list[Window]) -> tuple[float, int]:
    """Return the error rate over ``windows`` and the number of rows in them."""
    rows = sum(window.rows for window in windows)
    errors = sum(window.errors for window in windows)
    return (errors / rows if rows else float("nan")), rows
