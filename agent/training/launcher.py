"""Start a run's worker in its own process group, signal it, find its orphans.

Each run gets a directory ``DATA_DIR/runs/ID/`` with ``spec.json`` (what
to train), ``run.log`` (the worker's stdout and stderr, plus lines the
agent adds, prefixed ``[rigdeck]``), ``events.jsonl`` (progress and
metrics, appended by the worker) and ``result.json`` (written last, on
success). The artifact goes to ``DATA_DIR/artifacts/MODEL/run-ID/``.

The worker is started with ``start_new_session=True``, so its process
group id equals its pid and one ``killpg`` reaches every process it
started, torchrun's workers included. A process that leaves the group
(a recipe's child started with ``start_new_session=True``) is found by
``processes_outside_group`` and signalled on its own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil

logger = logging.getLogger(__name__)

WORKER_MODULE = "agent.training.worker"
RUN_ID_VARIABLE = "RIGDECK_RUN_ID"
# The run directory, unique across agents on one host (run ids are not),
# so that the processes of a run can be found by their environment.
RUN_DIR_VARIABLE = "RIGDECK_RUN_DIR"


@dataclass(frozen=True)
class RunPaths:
    run_dir: Path
    artifact_dir: Path

    @classmethod
    def for_run(cls, data_dir: Path, model: str, run_id: int) -> RunPaths:
        return cls(
            run_dir=data_dir / "runs" / str(run_id),
            artifact_dir=data_dir / "artifacts" / model / f"run-{run_id}",
        )

    @property
    def spec(self) -> Path:
        return self.run_dir / "spec.json"

    @property
    def log(self) -> Path:
        return self.run_dir / "run.log"

    @property
    def events(self) -> Path:
        return self.run_dir / "events.jsonl"

    @property
    def result(self) -> Path:
        return self.run_dir / "result.json"


def worker_command(
    spec_path: Path, gpus: int, python: str = sys.executable
) -> list[str]:
    """Return the worker's command line; more than one GPU runs it under torchrun."""
    if gpus > 1:
        return [
            python,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={gpus}",
            "-m",
            WORKER_MODULE,
            str(spec_path),
        ]
    return [python, "-m", WORKER_MODULE, str(spec_path)]


def worker_environment(
    base: Mapping[str, str], run_id: int, gpus: list[int], run_dir: Path | None = None
) -> dict[str, str]:
    """Return the worker's environment: the agent's, pinned to ``gpus``.

    An empty ``CUDA_VISIBLE_DEVICES`` hides every GPU, so a CPU run cannot
    take GPU memory by accident. ``run_dir`` becomes ``RIGDECK_RUN_DIR``,
    which the worker's children inherit.
    """
    environment = dict(base)
    environment["CUDA_VISIBLE_DEVICES"] = ",".join(str(index) for index in gpus)
    environment[RUN_ID_VARIABLE] = str(run_id)
    if run_dir is not None:
        environment[RUN_DIR_VARIABLE] = str(run_dir)
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def write_spec(paths: RunPaths, spec: dict[str, Any]) -> None:
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    temporary = paths.spec.with_suffix(".tmp")
    temporary.write_text(json.dumps(spec, indent=2, sort_keys=True))
    os.replace(temporary, paths.spec)


def spawn(
    command: list[str], environment: dict[str, str], paths: RunPaths
) -> subprocess.Popen:
    """Start the worker in a new session; its output goes to the run log.

    Raises:
        OSError: the interpreter could not be started.
    """
    with paths.log.open("ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=paths.run_dir,
            env=environment,
            start_new_session=True,
        )


def append_log(paths: RunPaths, message: str) -> None:
    """Add a line from the agent to the run log, marked ``[rigdeck]``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        with paths.log.open("a", encoding="utf-8") as log:
            log.write(f"[rigdeck] {stamp} {message}\n")
    except OSError as error:
        logger.warning("cannot write to the run log %s: %s", paths.log, error)


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to a process group; return False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def processes_outside_group(pgid: int, run_dir: Path) -> list[psutil.Process]:
    """Return the live processes of a run that a signal to its group misses.

    The worker's pid equals ``pgid``. Two kinds are found: descendants of a
    live worker in another process group, and, because a process whose
    parent died is re-parented out of the worker's tree, any process whose
    environment has ``RIGDECK_RUN_DIR`` equal to ``run_dir``. A process
    that left the group and also dropped that variable is found only while
    the worker lives.
    """
    import psutil

    found: dict[int, psutil.Process] = {}
    try:
        for child in psutil.Process(pgid).children(recursive=True):
            found[child.pid] = child
    except psutil.NoSuchProcess:
        pass
    marker = str(run_dir)
    for process in psutil.process_iter():
        try:
            if process.environ().get(RUN_DIR_VARIABLE) == marker:
                found.setdefault(process.pid, process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    outside = []
    for pid, process in found.items():
        try:
            if os.getpgid(pid) != pgid:
                outside.append(process)
        except ProcessLookupError:
            continue
    return outside


def signal_processes(processes: Iterable[psutil.Process], sig: signal.Signals) -> None:
    """Send ``sig`` to each process that still runs; psutil checks pid reuse."""
    import psutil

    for process in processes:
        try:
            process.send_signal(sig)
        except (psutil.NoSuchProcess, psutil.AccessDenied) as error:
            logger.debug("cannot signal process %s: %s", process.pid, error)


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_group(pgid: int, grace_seconds: float, poll_seconds: float = 0.05) -> None:
    """SIGTERM a process group, then SIGKILL whatever is left after the grace period.

    Used for groups that are not this process's children (orphans found at
    startup), which cannot be waited for, so it polls for the group to go.
    """
    if not signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not group_exists(pgid):
            return
        time.sleep(poll_seconds)
    signal_group(pgid, signal.SIGKILL)


def worker_processes(runs_dir: Path) -> Iterator[tuple[int, int, int | None]]:
    """Yield (pid, pgid, run id) of every live worker of this data directory.

    A worker is recognised by its command line: it runs ``WORKER_MODULE``
    with a spec file under ``runs_dir``. Another agent's workers, on
    another data directory, are not matched.
    """
    import psutil

    marker = str(runs_dir) + os.sep
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = process.info.get("cmdline") or []
        if WORKER_MODULE not in command:
            continue
        spec = next((part for part in command if part.startswith(marker)), None)
        if spec is None:
            continue
        try:
            pgid = os.getpgid(process.info["pid"])
        except ProcessLookupError:
            continue
        yield process.info["pid"], pgid, _run_id_of(spec, runs_dir)


def remove_artifact_dir(paths: RunPaths) -> None:
    """Delete the artifact directory of a run that registered no version."""
    if paths.artifact_dir.exists():
        shutil.rmtree(paths.artifact_dir, ignore_errors=True)


def _run_id_of(spec: str, runs_dir: Path) -> int | None:
    relative = Path(spec).relative_to(runs_dir)
    try:
        return int(relative.parts[0])
    except (IndexError, ValueError):
        return None
