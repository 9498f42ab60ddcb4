"""The agent's store: one SQLite file in WAL mode plus an artifact directory.

This package imports nothing else of rigdeck's, so any part of the system
(agent, tools, tests) can open a store the same way.
"""

from store import (
    alerts,
    artifacts,
    audit,
    deployments,
    jobs,
    predictions,
    releases,
    runs,
    settings,
    telemetry,
    tokens,
    versions,
)
from store._store import DEFAULT_BUSY_TIMEOUT_MS, Store, connect
from store.errors import NotFoundError, SchemaError, StoreBusyError, StoreError

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "NotFoundError",
    "SchemaError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "alerts",
    "artifacts",
    "audit",
    "connect",
    "deployments",
    "jobs",
    "predictions",
    "releases",
    "runs",
    "settings",
    "telemetry",
    "tokens",
    "versions",
]
