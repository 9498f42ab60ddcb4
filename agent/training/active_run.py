"""The supervisor's record of a run whose worker or registration is in progress."""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from agent.training import launcher
from agent.training.events import EventReader
from agent.training.launcher import RunPaths
from store import Store
from store import runs as run_rows
from store.runs import RunState

logger = logging.getLogger(__name__)


@dataclass
class ActiveRun:
    run_id: int
    model: str
    process: Any
    paths: RunPaths
    gpus: list[int]
    started: float
    budget_seconds: float
    events: EventReader
    memory_limit_bytes: int | None = None
    stop_reason: str | None = None
    stop_detail: str | None = None
    term_sent_at: float | None = None
    kill_sent: bool = False
    progress: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    data_sha256: str | None = None
    error_summary: str | None = None
    dirty: bool = False
    flushed_at: float = 0.0
    gpus_checked_at: float = 0.0
    # Processes outside the process group, found when SIGTERM was sent.
    strays: list[Any] = field(default_factory=list)
    # Set when the worker has exited, then the decided end state and error.
    returncode: int | None = None
    end: tuple[RunState, str | None] | None = None

    @property
    def pgid(self) -> int:
        return self.process.pid

    def read_events(self) -> None:
        for event in self.events.read():
            kind = event.get("event")
            if kind == "progress":
                self.progress = {k: v for k, v in event.items() if k != "event"}
            elif kind == "metric" and isinstance(event.get("name"), str):
                self.metrics[event["name"]] = event.get("value")
            elif kind == "data":
                self.data_sha256 = event.get("sha256")
            elif kind == "error":
                self.error_summary = str(event.get("summary") or "")[:1000]
            else:
                continue
            self.dirty = True

    def flush(self, store: Store, now: float) -> None:
        """Store the progress, metrics and data hash read since the last flush."""
        with store.write() as db:
            run_rows.update_run(
                db,
                self.run_id,
                progress_json=self.progress,
                metrics_json=self.metrics or None,
                data_sha256=self.data_sha256,
            )
        self.dirty = False
        self.flushed_at = now

    def signal(self, sig: signal.Signals) -> None:
        """Signal the run's process group and its processes outside the group."""
        strays = self.find_strays()
        launcher.signal_group(self.pgid, sig)
        launcher.signal_processes(strays, sig)

    def find_strays(self) -> list[Any]:
        """Return the run's processes outside its group, now or at SIGTERM."""
        try:
            found = launcher.processes_outside_group(self.pgid, self.paths.run_dir)
        except Exception:
            # Searching is best effort, so its failure must not stop the signal.
            logger.exception("searching for processes of run %s failed", self.run_id)
            found = []
        known = {process.pid for process in found}
        return found + [item for item in self.strays if item.pid not in known]
