"""What the agent tells a serving worker when it starts it, and what it reports back.

The agent writes ``DATA_DIR/serving/worker.json`` (a ``WorkerSpec``) and
starts ``python -m agent.serving.worker --spec FILE``. Once listening,
the worker writes ``DATA_DIR/serving.json`` with its pid, port and URL,
the way the agent writes ``agent.json``, so tests and tools find a worker
started on port 0. Neither side imports torch here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import AgentConfig

RUNTIME_FILE = "serving.json"
SPEC_FILE = "worker.json"
LOG_FILE = "worker.log"


@dataclass(frozen=True)
class WorkerSpec:
    """Settings of one worker process; ``[serving]`` plus where the store is."""

    agent_name: str
    store_path: str
    runtime_file: str
    host: str
    port: int
    tls_cert: str | None
    tls_key: str | None
    predict_token_sha256: tuple[str, ...]
    max_body_bytes: int
    max_batch_rows: int
    log_sample_rate: float
    log_flush_seconds: float
    poll_seconds: float
    cpu_threads: int
    busy_timeout_ms: int
    log_level: str

    @classmethod
    def from_config(cls, config: AgentConfig, port: int | None = None) -> WorkerSpec:
        """Build the spec; ``port`` overrides ``serving.port`` (a restart keeps it)."""
        serving = config.serving
        return cls(
            agent_name=config.agent.name,
            store_path=str(config.store_path),
            runtime_file=str(config.data_dir / RUNTIME_FILE),
            host=serving.host,
            port=serving.port if port is None else port,
            tls_cert=str(serving.tls_cert) if serving.tls_cert else None,
            tls_key=str(serving.tls_key) if serving.tls_key else None,
            predict_token_sha256=tuple(serving.predict_token_sha256),
            max_body_bytes=serving.max_body_bytes,
            max_batch_rows=serving.max_batch_rows,
            log_sample_rate=serving.log_sample_rate,
            log_flush_seconds=serving.log_flush_seconds,
            poll_seconds=serving.poll_seconds,
            cpu_threads=serving.cpu_threads,
            busy_timeout_ms=config.store.busy_timeout_ms,
            log_level=config.agent.log_level,
        )

    def write(self, path: Path) -> None:
        """Write the spec atomically, readable by its owner only (it has digests)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(dataclasses.asdict(self), handle, indent=2, sort_keys=True)
        os.replace(temporary, path)

    @classmethod
    def read(cls, path: Path) -> WorkerSpec:
        values: dict[str, Any] = json.loads(path.read_text())
        values["predict_token_sha256"] = tuple(values["predict_token_sha256"])
        return cls(**values)


def read_runtime(data_dir: Path) -> dict[str, Any] | None:
    """Return the running worker's pid, port and URL, or None when it wrote none."""
    try:
        return json.loads((data_dir / RUNTIME_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
