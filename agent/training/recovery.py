"""Startup recovery after an agent that was killed while runs were active.

Only one agent runs on a data directory (``agent.lock``). So at startup
no run of this store can still be queued or running, and each such run is
marked ``interrupted``. Every worker process left from this data
directory has its process group ended, which releases its GPU.
"""

from __future__ import annotations

import logging
import time

from agent.config import AgentConfig
from agent.training import launcher
from agent.training.launcher import RunPaths
from store import Store, alerts
from store import runs as run_rows
from store.runs import RunState

logger = logging.getLogger(__name__)


def recover(store: Store, config: AgentConfig) -> list[int]:
    """Mark left-over active runs interrupted and end orphaned workers.

    Returns:
        The ids of the runs marked interrupted.
    """
    interrupted = _mark_interrupted(store)
    orphans = _end_orphans(config)
    for run in interrupted:
        paths = RunPaths.for_run(config.data_dir, run["model"], run["id"])
        launcher.remove_artifact_dir(paths)
        if paths.run_dir.exists():
            launcher.append_log(
                paths, "marked interrupted: the agent stopped during this run"
            )
    if interrupted or orphans:
        logger.warning(
            "recovered after an unclean stop: runs %s interrupted, %s orphaned process "
            "groups ended",
            [run["id"] for run in interrupted] or "none",
            len(orphans),
        )
    return [run["id"] for run in interrupted]


def _mark_interrupted(store: Store) -> list[dict]:
    with store.write() as db:
        left = run_rows.active_runs(db)
        for run in left:
            was = "running" if run["state"] == RunState.RUNNING else "queued"
            message = (
                f"The agent stopped (killed or crashed) while this run was {was}; it "
                "was "
                "marked interrupted when the agent started again."
            )
            run_rows.transition(db, run["id"], RunState.INTERRUPTED, error=message)
            alerts.raise_alert(
                db,
                kind="run_interrupted",
                severity="warning",
                source=f"run/{run['id']}",
                message=f"Run {run['id']} of model {run['model']} was interrupted "
                "by an "
                "agent restart.",
            )
    return left


def _end_orphans(config: AgentConfig) -> set[int]:
    runs_dir = config.data_dir / "runs"
    groups = {pgid for _, pgid, _ in launcher.worker_processes(runs_dir)}
    started = time.monotonic()
    for pgid in groups:
        logger.warning("ending orphaned worker process group %s", pgid)
        launcher.end_group(pgid, config.training.cancel_grace_seconds)
    if groups:
        logger.info("orphaned workers ended in %.1f s", time.monotonic() - started)
    return groups
