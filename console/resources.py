"""What the console fetches from an agent, and the cache it keeps per agent.

A screen names the resources it shows (``host``, ``runs``, ``versions/NAME``
...). The poller fetches only those, in one async worker per agent. The app
then applies the results to that agent's ``AgentData`` on its own thread.
Lists that only grow are fetched incrementally: the audit log after the last
id seen, drift events since the last event, telemetry since the last bucket,
run logs from the last byte offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from console.client import AgentClient

HOST = "host"
ACTIVE_RUNS = "active_runs"
RUNS = "runs"
JOBS = "jobs"
MODELS = "models"
DEPLOYMENTS = "deployments"
RELEASES = "releases"
PENDING_RELEASES = "pending_releases"
OPEN_ALERTS = "open_alerts"
ALERTS = "alerts"
MONITORS = "monitors"
DRIFT_EVENTS = "drift_events"
AUDIT = "audit"
SERVING = "serving"
# Parametrised kinds: "versions/MODEL", "release/ID", "telemetry/METRIC",
# "live/MODEL".
VERSIONS_PREFIX = "versions/"
RELEASE_PREFIX = "release/"
TELEMETRY_PREFIX = "telemetry/"
LIVE_PREFIX = "live/"
# The window of a deployment's live figures: requests, error rate, latency.
LIVE_WINDOW_SECONDS = 300.0

# The fleet view's resources besides the host.
FLEET_KINDS = (ACTIVE_RUNS, DEPLOYMENTS, OPEN_ALERTS, PENDING_RELEASES)
# GPU metrics the host view draws as sparklines, with their units.
GPU_METRICS = (
    "gpu_utilization_ratio",
    "gpu_memory_used_bytes",
    "gpu_temperature_celsius",
    "gpu_power_watts",
)
TELEMETRY_WINDOW_SECONDS = 3600.0
TELEMETRY_STEP_SECONDS = 60.0
# Kinds that change slower than the poll: fetched at most this often.
MIN_REFRESH_SECONDS = {
    TELEMETRY_PREFIX: 15.0,
    JOBS: 6.0,
    MODELS: 6.0,
    LIVE_PREFIX: 4.0,
}
# A kind the agent does not serve (404) or the token may not read (403) is
# asked for again after this long: the agent may be upgraded meanwhile.
MISSING_RETRY_SECONDS = 60.0
RUNS_LIMIT = 50
ALERTS_LIMIT = 200
# Incremental lists (audit, drift events) are read in pages of PAGE_LIMIT,
# at most PAGES_CAP items per poll; the rest follows at the next poll.
PAGE_LIMIT = 500
PAGES_CAP = 2000
AUDIT_FIRST_WINDOW_SECONDS = 7 * 86400.0
AUDIT_KEPT = 2000
DRIFT_FIRST_WINDOW_SECONDS = 86400.0
DRIFT_EVENTS_KEPT = 1000


@dataclass
class AgentData:
    """Everything the console last fetched from one agent.

    ``missing`` maps a resource kind to why it is unavailable (the agent
    has no such route yet, or the token may not read it), so that a screen
    shows the reason instead of an empty table.
    """

    host: dict[str, Any] | None = None
    active_runs: list[dict[str, Any]] | None = None
    runs: list[dict[str, Any]] | None = None
    jobs: list[dict[str, Any]] | None = None
    models: list[dict[str, Any]] | None = None
    deployments: list[dict[str, Any]] | None = None
    releases: list[dict[str, Any]] | None = None
    pending_releases: list[dict[str, Any]] | None = None
    open_alerts: list[dict[str, Any]] | None = None
    open_alerts_more: bool = False
    alerts: list[dict[str, Any]] | None = None
    monitors: list[dict[str, Any]] | None = None
    drift_events: list[dict[str, Any]] | None = None
    audit: list[dict[str, Any]] | None = None
    serving: dict[str, Any] | None = None
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    release_details: dict[int, dict[str, Any]] = field(default_factory=dict)
    telemetry: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    fetched_at: dict[str, float] = field(default_factory=dict)

    def deployment(self, model: str) -> dict[str, Any] | None:
        for item in self.deployments or ():
            if item.get("model") == model:
                return item
        return None


# Kinds fetched with one GET and no state: (path, query parameters).
SIMPLE_ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    HOST: ("/api/v1/host", {}),
    ACTIVE_RUNS: ("/api/v1/runs", {"state": "running", "limit": RUNS_LIMIT}),
    RUNS: ("/api/v1/runs", {"limit": RUNS_LIMIT}),
    JOBS: ("/api/v1/jobs", {}),
    MODELS: ("/api/v1/models", {}),
    DEPLOYMENTS: ("/api/v1/deployments", {}),
    RELEASES: ("/api/v1/releases", {"limit": RUNS_LIMIT}),
    PENDING_RELEASES: ("/api/v1/releases", {"state": "pending", "limit": RUNS_LIMIT}),
    OPEN_ALERTS: ("/api/v1/alerts", {"open": "true", "limit": ALERTS_LIMIT}),
    ALERTS: ("/api/v1/alerts", {"limit": ALERTS_LIMIT}),
    MONITORS: ("/api/v1/drift/monitors", {}),
    SERVING: ("/api/v1/serving", {}),
}


async def fetch(client: AgentClient, data: AgentData, kind: str, now: float) -> Any:
    """Fetch one resource of ``client``'s agent; the result goes to ``apply``."""
    if kind in SIMPLE_ROUTES:
        path, params = SIMPLE_ROUTES[kind]
        return await client.get(path, **params)

    if kind == DRIFT_EVENTS:
        return await _fetch_drift_events(client, data, now)
    if kind == AUDIT:
        return await _fetch_audit(client, data, now)
    if kind.startswith(VERSIONS_PREFIX):
        model = kind.removeprefix(VERSIONS_PREFIX)
        return await client.get(f"/api/v1/models/{model}/versions")
    if kind.startswith(RELEASE_PREFIX):
        release_id = kind.removeprefix(RELEASE_PREFIX)
        return await client.get(f"/api/v1/releases/{release_id}")
    if kind.startswith(TELEMETRY_PREFIX):
        return await _fetch_telemetry(client, data, kind, now)
    if kind.startswith(LIVE_PREFIX):
        model = kind.removeprefix(LIVE_PREFIX)
        return await client.get(
            f"/api/v1/deployments/{model}/live", window_seconds=LIVE_WINDOW_SECONDS
        )
    raise ValueError(f"Unknown resource kind {kind!r}.")


async def _fetch_drift_events(
    client: AgentClient, data: AgentData, now: float
) -> list[dict[str, Any]]:
    """Return the drift events after the last one seen (the last day's at first)."""
    events = data.drift_events
    cursor = events[-1]["id"] if events else None
    since = None if cursor is not None else now - DRIFT_FIRST_WINDOW_SECONDS
    return await _follow_pages(client, "/api/v1/drift/events", since, cursor)


async def _fetch_audit(
    client: AgentClient, data: AgentData, now: float
) -> list[dict[str, Any]]:
    """Return the audit entries after the last one seen, following pages."""
    entries = data.audit
    cursor = entries[-1]["id"] if entries else None
    since = None if cursor is not None else now - AUDIT_FIRST_WINDOW_SECONDS
    return await _follow_pages(client, "/api/v1/audit", since, cursor)


async def _follow_pages(
    client: AgentClient, path: str, since: float | None, cursor: int | None
) -> list[dict[str, Any]]:
    """Read an oldest-first list from ``cursor`` on, page by page, up to a cap."""
    new: list[dict[str, Any]] = []
    while len(new) < PAGES_CAP:
        body = await client.get(path, since=since, cursor=cursor, limit=PAGE_LIMIT)
        new.extend(body["items"])
        cursor = body.get("next_cursor")
        if cursor is None:
            break
    return new


async def _fetch_telemetry(
    client: AgentClient, data: AgentData, kind: str, now: float
) -> dict[str, Any]:
    metric = kind.removeprefix(TELEMETRY_PREFIX)
    known = data.telemetry.get(metric)
    since = now - TELEMETRY_WINDOW_SECONDS
    if known:
        # Only the last bucket can still change: ask from its start on.
        since = max(point[0] for series in known for point in series["points"][-1:])
    return await client.get(
        "/api/v1/telemetry", metric=metric, since=since, step=TELEMETRY_STEP_SECONDS
    )


def apply(data: AgentData, kind: str, result: Any, now: float) -> None:
    """Store a fetched ``result`` in ``data``; runs on the app's thread."""
    data.missing.pop(kind, None)
    data.fetched_at[kind] = now
    if kind in (HOST, SERVING):
        setattr(data, kind, result)
    elif kind == OPEN_ALERTS:
        data.open_alerts = result["items"]
        data.open_alerts_more = result.get("next_cursor") is not None
    elif kind in (ACTIVE_RUNS, RUNS, JOBS, MODELS, DEPLOYMENTS, ALERTS):
        setattr(data, kind, result["items"])
    elif kind == RELEASES:
        data.releases = [_checked_item(item) for item in result["items"]]
        if result.get("next_cursor") is None:
            # The whole list contains the pending ones, so update the fleet's too.
            data.pending_releases = [
                _checked_release(r)
                for r in data.releases
                if r.get("state") == "pending"
            ]
            data.fetched_at[PENDING_RELEASES] = now
    elif kind == PENDING_RELEASES:
        data.pending_releases = [_checked_release(item) for item in result["items"]]
    elif kind == MONITORS:
        data.monitors = result["items"]
    elif kind == DRIFT_EVENTS:
        data.drift_events = _merge_by_id(data.drift_events, result, DRIFT_EVENTS_KEPT)
    elif kind == AUDIT:
        data.audit = _merge_by_id(data.audit, result, AUDIT_KEPT)
    elif kind.startswith(VERSIONS_PREFIX):
        data.versions[kind.removeprefix(VERSIONS_PREFIX)] = result["items"]
    elif kind.startswith(RELEASE_PREFIX):
        data.release_details[int(kind.removeprefix(RELEASE_PREFIX))] = result
    elif kind.startswith(LIVE_PREFIX):
        data.live[kind.removeprefix(LIVE_PREFIX)] = _checked_live(result)
    elif kind.startswith(TELEMETRY_PREFIX):
        metric = kind.removeprefix(TELEMETRY_PREFIX)
        data.telemetry[metric] = merge_series(
            data.telemetry.get(metric), result["series"], now
        )


def _checked_item(item: Any) -> dict[str, Any]:
    """Return a list item with an integer id, or raise ValueError."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), int):
        raise ValueError(f"an item without an integer id: {item!r}")
    return item


def _checked_release(item: Any) -> dict[str, Any]:
    """Return a pending release as the fleet reads it, or raise ValueError."""
    if not isinstance(_checked_item(item).get("model"), str):
        raise ValueError(f"a release without a model name: {item!r}")
    if not isinstance(item.get("version"), int):
        raise ValueError(f"release {item.get('id')!r} has no version number")
    return item


def _checked_live(result: Any) -> dict[str, Any]:
    """Return live figures whose numbers are numbers, or raise ValueError."""
    if not isinstance(result, dict):
        raise ValueError(f"live figures that are not an object: {result!r}")
    window = result.get("window_seconds", LIVE_WINDOW_SECONDS)
    if not isinstance(window, (int, float)):
        raise ValueError(f"window_seconds {window!r} is not a number")
    checked = {**result, "window_seconds": float(window)}
    for role in ("stable", "canary"):
        figures = result.get(role)
        if figures is None:
            continue
        if not isinstance(figures, dict) or not isinstance(figures.get("version"), int):
            raise ValueError(f"{role} figures without a version number: {figures!r}")
        for key, value in figures.items():
            if value is not None and not isinstance(value, (int, float)):
                raise ValueError(f"{role} {key} {value!r} is not a number")
    return checked


def _merge_by_id(
    known: list[dict[str, Any]] | None, new: list[dict[str, Any]], kept: int
) -> list[dict[str, Any]]:
    by_id = {item["id"]: item for item in known or ()}
    by_id.update((item["id"], item) for item in new)
    return sorted(by_id.values(), key=lambda item: item["id"])[-kept:]


def merge_series(
    known: list[dict[str, Any]] | None, new: list[dict[str, Any]], now: float
) -> list[dict[str, Any]]:
    """Merge telemetry series by labels and bucket time, keeping the last hour."""
    merged: dict[tuple, dict[float, list]] = {}
    for series in [*(known or ()), *new]:
        key = tuple(sorted(series["labels"].items()))
        points = merged.setdefault(key, {})
        for point in series["points"]:
            points[point[0]] = point
    oldest = now - TELEMETRY_WINDOW_SECONDS
    return [
        {
            "labels": dict(key),
            "points": [points[ts] for ts in sorted(points) if ts >= oldest],
        }
        for key, points in merged.items()
    ]


def missing_reason(status: int | None, message: str) -> str | None:
    """Return why a resource is unavailable when an error means it stays so.

    A 404 means the agent has no such route (it is older than the console)
    or no such item. A 403 means the token's role may not read it. Both
    messages come from the agent. Other errors (timeouts, 5xx) are passing
    and leave the last data in place.
    """
    if status in (403, 404):
        return message
    return None
