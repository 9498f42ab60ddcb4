"""A stateful fake of the agent's control API behind an ``httpx.MockTransport``.

It implements the agent's control API routes with the shapes the console
reads, plus ``GET /api/v1/whoami``, which the real agent does not serve
yet. Roles, the four-eyes rule, required reasons and the error body are
the agent's. Snapshot tests use its seeded, fixed data; flow tests drive
its state through the console.

Tokens: ``viewer-token`` (viewer "vera"), ``operator-token`` (operator
"alice"), ``approver-token`` (approver "bob"), ``approver2-token``
(approver "carol"), ``admin-token`` (admin "root").
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# The fixed "now" of every seeded timestamp: 2027-01-15 08:00:00 UTC.
NOW = 1_800_000_000.0
ROLES = ("viewer", "operator", "approver", "admin")
TOKENS = {
    "viewer-token": ("vera", "viewer"),
    "operator-token": ("alice", "operator"),
    "approver-token": ("bob", "approver"),
    "approver2-token": ("carol", "approver"),
    "admin-token": ("root", "admin"),
}
GIB = 1024**3
# Routes whose body must carry a non-empty reason, as in agent.api.
REASON_REQUIRED = re.compile(
    r"/api/v1/(releases|releases/\d+/(approve|reject|promote|abort)"
    r"|models/[\w.-]+/rollback)"
)


class FakeError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class FakeAgent:
    """One fake agent; ``transport`` serves its API to an ``AgentClient``."""

    name: str
    seed: bool = True
    whoami: bool = True
    approvals_required: int = 1
    missing_prefixes: tuple[str, ...] = ()
    clock: Callable[[], float] = lambda: NOW
    host: dict[str, Any] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[int, str] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    releases: list[dict[str, Any]] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    # GET /deployments/{model}/live: the stable and canary figures by model.
    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    monitors: list[dict[str, Any]] = field(default_factory=list)
    drift_events: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    serving: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.seed:
            seed(self)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # Dispatch.

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((request.method, path))
        try:
            if any(path.startswith(prefix) for prefix in self.missing_prefixes):
                raise FakeError(404, "not_found", f"No route {request.method} {path}.")
            body = self._route(request, path)
        except FakeError as error:
            return httpx.Response(
                error.status,
                json={"error": {"code": error.code, "message": error.message}},
            )
        status = 201 if request.method == "POST" and path == "/api/v1/releases" else 200
        return httpx.Response(status, json=body)

    def _route(self, request: httpx.Request, path: str) -> Any:
        if path == "/api/v1/health":
            return {"status": "ok", "name": self.name}
        caller = self._authenticate(request)
        params = request.url.params
        body = json.loads(request.content or b"{}") if request.method == "POST" else {}
        for method, pattern, role, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and request.method == method:
                self._require(caller, role)
                reason_required = REASON_REQUIRED.fullmatch(path) and method == "POST"
                if reason_required and not body.get("reason"):
                    raise FakeError(
                        422, "invalid_request", "reason: Field required (min 1 char)."
                    )
                return handler(caller, params, body, *match.groups())
        raise FakeError(404, "not_found", f"No route {request.method} {path}.")

    def _routes(self):
        return (
            ("GET", r"/api/v1/whoami", "viewer", self._whoami),
            ("GET", r"/api/v1/tokens", "admin", lambda *a: {"items": []}),
            ("GET", r"/api/v1/host", "viewer", lambda *a: self.host),
            ("GET", r"/api/v1/serving", "viewer", lambda *a: self.serving),
            ("GET", r"/api/v1/telemetry", "viewer", self._telemetry),
            ("GET", r"/api/v1/jobs", "viewer", lambda *a: _page(self.jobs)),
            ("POST", r"/api/v1/jobs/([\w.-]+)/trigger", "operator", self._trigger),
            ("GET", r"/api/v1/runs", "viewer", self._list_runs),
            ("GET", r"/api/v1/runs/(\d+)", "viewer", self._get_run),
            ("GET", r"/api/v1/runs/(\d+)/log", "viewer", self._run_log),
            ("POST", r"/api/v1/runs/(\d+)/cancel", "operator", self._cancel),
            ("GET", r"/api/v1/models", "viewer", lambda *a: _page(self.models)),
            ("GET", r"/api/v1/models/([\w.-]+)/versions", "viewer", self._versions),
            ("POST", r"/api/v1/models/([\w.-]+)/rollback", "operator", self._rollback),
            (
                "GET",
                r"/api/v1/deployments",
                "viewer",
                lambda *a: _page(self.deployments),
            ),
            (
                "GET",
                r"/api/v1/deployments/([\w.-]+)/live",
                "viewer",
                self._live,
            ),
            ("GET", r"/api/v1/releases", "viewer", self._list_releases),
            ("POST", r"/api/v1/releases", "operator", self._request_release),
            ("GET", r"/api/v1/releases/(\d+)", "viewer", self._get_release),
            ("POST", r"/api/v1/releases/(\d+)/approve", "approver", self._approve),
            ("POST", r"/api/v1/releases/(\d+)/reject", "approver", self._reject),
            ("POST", r"/api/v1/releases/(\d+)/promote", "approver", self._promote),
            ("POST", r"/api/v1/releases/(\d+)/abort", "approver", self._abort),
            (
                "GET",
                r"/api/v1/drift/monitors",
                "viewer",
                lambda *a: _page(self.monitors),
            ),
            ("GET", r"/api/v1/drift/events", "viewer", self._drift_events),
            ("GET", r"/api/v1/alerts", "viewer", self._list_alerts),
            ("POST", r"/api/v1/alerts/(\d+)/ack", "operator", self._ack),
            ("GET", r"/api/v1/audit", "viewer", self._list_audit),
            ("GET", r"/api/v1/audit/verify", "viewer", self._verify),
        )

    def _authenticate(self, request: httpx.Request) -> tuple[str, str]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in TOKENS:
            raise FakeError(
                401, "invalid_token", "The bearer token is unknown or revoked."
            )
        return TOKENS[token]

    def _require(self, caller: tuple[str, str], role: str) -> None:
        name, has = caller
        if ROLES.index(has) < ROLES.index(role):
            raise FakeError(
                403,
                "forbidden",
                f"This action needs the {role} role or higher; the token "
                f"{name!r} has the {has} role.",
            )

    def _record(self, actor: str, action: str, target: str, reason: str | None) -> None:
        previous = self.audit[-1]["hash"] if self.audit else "0" * 64
        entry_id = len(self.audit) + 1
        self.audit.append(
            {
                "id": entry_id,
                "ts": self.clock(),
                "actor": actor,
                "action": action,
                "target": target,
                "reason": reason,
                "before": None,
                "after": None,
                "prev_hash": previous,
                "hash": f"{entry_id:064x}",
            }
        )

    # Routes.

    def _whoami(self, caller, *args):
        if not self.whoami:
            raise FakeError(404, "not_found", "No route GET /api/v1/whoami.")
        return {"name": caller[0], "role": caller[1]}

    def _telemetry(self, caller, params, body):
        metric = params.get("metric")
        since = float(params.get("since") or self.clock() - 3600)
        step = float(params.get("step") or 60)
        series = []
        for gpu in self.host.get("gpu", {}).get("gpus", []):
            if gpu.get("state") != "ok":
                continue
            points = []
            start = since // step * step
            for index in range(int((self.clock() - start) // step) + 1):
                ts = start + index * step
                value = _wave(metric, gpu["index"], ts, gpu)
                points.append([ts, value, value, value, 3])
            series.append({"labels": {"gpu": str(gpu["index"])}, "points": points})
        return {"metric": metric, "series": series}

    def _trigger(self, caller, params, body, job):
        if not any(item["name"] == job for item in self.jobs):
            raise FakeError(404, "not_found", f"No job named {job!r}.")
        run = {
            "id": max((r["id"] for r in self.runs), default=0) + 1,
            "job": job,
            "model": job,
            "state": "running",
            "trigger": "manual",
            "requested_by": caller[0],
            "created_at": self.clock(),
            "started_at": self.clock(),
            "finished_at": None,
            "pid": 5000 + len(self.runs),
            "progress": {"epoch": 1, "step": 10},
            "metrics": {},
            "spec": {"recipe": {"params": {"max_epochs": 30}}},
        }
        self.runs.append(run)
        self.logs[run["id"]] = f"[rigdeck] run {run['id']} started by {caller[0]}\n"
        self._record(caller[0], "job.trigger", f"job/{job}", body.get("reason"))
        return run

    def _list_runs(self, caller, params, body):
        runs = self.runs[::-1]
        if params.get("state"):
            runs = [run for run in runs if run["state"] == params["state"]]
        return _page(runs[: int(params.get("limit") or 100)])

    def _list_releases(self, caller, params, body):
        releases = self.releases[::-1]
        if params.get("state"):
            releases = [r for r in releases if r["state"] == params["state"]]
        return _page(releases[: int(params.get("limit") or 100)])

    def _run(self, run_id: str) -> dict[str, Any]:
        for run in self.runs:
            if run["id"] == int(run_id):
                return run
        raise FakeError(404, "not_found", f"No run with id {run_id}.")

    def _get_run(self, caller, params, body, run_id):
        return self._run(run_id)

    def _run_log(self, caller, params, body, run_id):
        run = self._run(run_id)
        text = self.logs.get(run["id"], "").encode()
        offset = int(params.get("offset") or 0)
        chunk = text[offset:]
        return {
            "run_id": run["id"],
            "offset": offset,
            "next_offset": offset + len(chunk),
            "size_bytes": len(text),
            "text": chunk.decode(),
            "running": run["state"] in ("queued", "running"),
            "state": run["state"],
        }

    def _cancel(self, caller, params, body, run_id):
        run = self._run(run_id)
        if run["state"] not in ("queued", "running"):
            raise FakeError(409, "run_finished", f"Run {run_id} is {run['state']}.")
        run.update(
            state="cancelled",
            finished_at=self.clock(),
            error=f"Cancelled by {caller[0]}.",
        )
        self.logs[run["id"]] = self.logs.get(run["id"], "") + "[rigdeck] cancelled\n"
        self._record(caller[0], "run.cancel", f"run/{run_id}", body.get("reason"))
        return run

    def _versions(self, caller, params, body, model):
        if model not in self.versions:
            raise FakeError(404, "not_found", f"No model named {model!r}.")
        return _page(self.versions[model][::-1])

    def _live(self, caller, params, body, model):
        self._deployment(model)
        window = float(params.get("window_seconds") or 300)
        figures = self.live.get(model, {})
        return {
            "model": model,
            "window_seconds": window,
            "since": NOW - window,
            "stable": figures.get("stable"),
            "canary": figures.get("canary"),
        }

    def _deployment(self, model: str) -> dict[str, Any]:
        for item in self.deployments:
            if item["model"] == model:
                return item
        raise FakeError(404, "not_found", f"No deployment of model {model!r}.")

    def _rollback(self, caller, params, body, model):
        deployment = self._deployment(model)
        target = deployment.get("rollback_version")
        if target is None:
            raise FakeError(
                409, "no_rollback_target", f"{model} has no earlier version."
            )
        before = deployment["stable_version"]
        deployment.update(
            stable_version=target,
            canary_version=None,
            canary_weight=0.0,
            rollback_version=None,
        )
        self._set_model(model, stable_version=target, canary_version=None)
        for release in self.releases:
            if release["model"] == model and release["state"] == "canary":
                release["state"] = "aborted"
        self._record(
            caller[0],
            "model.rollback",
            f"model/{model}",
            f"{body['reason']} (v{before} -> v{target})",
        )
        change = {"from_version": before, "to_version": target}
        return {"model": model, "deployment": deployment, "change": change}

    def _release(self, release_id: str) -> dict[str, Any]:
        for release in self.releases:
            if release["id"] == int(release_id):
                return release
        raise FakeError(404, "not_found", f"No release with id {release_id}.")

    def _request_release(self, caller, params, body):
        release = {
            "id": max((r["id"] for r in self.releases), default=0) + 1,
            "model": body["model"],
            "version": body["version"],
            "state": "pending",
            "requested_by": caller[0],
            "reason": body.get("reason"),
            "approvals_required": self.approvals_required,
            "approvals": [],
            "canary_weight": None,
            "created_at": self.clock(),
            "updated_at": self.clock(),
        }
        self.releases.append(release)
        self._record(
            caller[0], "release.request", f"release/{release['id']}", body.get("reason")
        )
        return release

    def _get_release(self, caller, params, body, release_id):
        return self._release(release_id)

    def _check_state(self, release: dict[str, Any], *states: str) -> None:
        if release["state"] not in states:
            raise FakeError(
                409,
                "invalid_transition",
                f"Release {release['id']} is {release['state']}; expected "
                f"{' or '.join(states)}.",
            )

    def _decide(self, caller, release_id, decision, reason):
        release = self._release(release_id)
        self._check_state(release, "pending")
        if decision == "approve" and release["requested_by"] == caller[0]:
            raise FakeError(
                403,
                "four_eyes",
                f"{caller[0]} requested release {release_id} and cannot approve it; "
                "another approver must.",
            )
        if any(a["actor"] == caller[0] for a in release["approvals"]):
            raise FakeError(409, "already_decided", f"{caller[0]} already decided.")
        release["approvals"].append(
            {
                "actor": caller[0],
                "decision": decision,
                "reason": reason,
                "ts": self.clock(),
            }
        )
        self._record(caller[0], f"release.{decision}", f"release/{release_id}", reason)
        return release

    def _approve(self, caller, params, body, release_id):
        release = self._decide(caller, release_id, "approve", body.get("reason"))
        approved = sum(1 for a in release["approvals"] if a["decision"] == "approve")
        if approved >= release["approvals_required"]:
            release.update(state="canary", canary_weight=0.1)
            deployment = self._deployment(release["model"])
            deployment.update(
                canary_version=release["version"],
                canary_weight=0.1,
                release_id=release["id"],
            )
            self._set_model(release["model"], canary_version=release["version"])
        return release

    def _reject(self, caller, params, body, release_id):
        release = self._decide(caller, release_id, "reject", body.get("reason"))
        release["state"] = "rejected"
        return release

    def _promote(self, caller, params, body, release_id):
        release = self._release(release_id)
        self._check_state(release, "canary")
        deployment = self._deployment(release["model"])
        deployment.update(
            rollback_version=deployment["stable_version"],
            stable_version=release["version"],
            canary_version=None,
            canary_weight=0.0,
        )
        self._set_model(
            release["model"], stable_version=release["version"], canary_version=None
        )
        release["state"] = "promoted"
        self._record(
            caller[0], "release.promote", f"release/{release_id}", body.get("reason")
        )
        return release

    def _abort(self, caller, params, body, release_id):
        release = self._release(release_id)
        self._check_state(release, "canary", "approved")
        deployment = self._deployment(release["model"])
        deployment.update(canary_version=None, canary_weight=0.0)
        self._set_model(release["model"], canary_version=None)
        release["state"] = "aborted"
        self._record(
            caller[0], "release.abort", f"release/{release_id}", body.get("reason")
        )
        return release

    def _set_model(self, name: str, **values: Any) -> None:
        for model in self.models:
            if model["name"] == name:
                model.update(values)

    def _drift_events(self, caller, params, body):
        since = float(params.get("since") or 0)
        cursor = int(params.get("cursor") or 0)
        return _page(
            [e for e in self.drift_events if e["ts"] >= since and e["id"] > cursor]
        )

    def _list_alerts(self, caller, params, body):
        alerts = self.alerts[::-1]
        if params.get("open") == "true":
            alerts = [a for a in alerts if a["acknowledged_at"] is None]
        return _page(alerts)

    def _ack(self, caller, params, body, alert_id):
        for alert in self.alerts:
            if alert["id"] == int(alert_id):
                if alert["acknowledged_at"] is None:
                    alert.update(
                        acknowledged_by=caller[0], acknowledged_at=self.clock()
                    )
                    self._record(
                        caller[0],
                        "alert.acknowledge",
                        f"alert/{alert_id}",
                        body.get("reason"),
                    )
                return alert
        raise FakeError(404, "not_found", f"No alert with id {alert_id}.")

    def _list_audit(self, caller, params, body):
        cursor = int(params.get("cursor") or 0)
        since = float(params.get("since") or 0)
        limit = int(params.get("limit") or 100)
        items = [e for e in self.audit if e["id"] > cursor and e["ts"] >= since][:limit]
        next_cursor = items[-1]["id"] if len(items) == limit else None
        return {"items": items, "next_cursor": next_cursor}

    def _verify(self, caller, params, body):
        return {
            "ok": True,
            "checked": len(self.audit),
            "first_bad_id": None,
            "message": f"The audit chain of {len(self.audit)} entries verifies.",
        }


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"items": copy.deepcopy(items), "next_cursor": None}


def _wave(metric: str | None, index: int, ts: float, gpu: dict[str, Any]) -> float:
    """A deterministic hour of history: a triangle wave per GPU and metric."""
    phase = ((ts // 60) + index * 7) % 20 / 20
    shape = 1 - abs(2 * phase - 1)
    if metric == "gpu_utilization_ratio":
        return round(0.2 + 0.7 * shape, 3)
    if metric == "gpu_memory_used_bytes":
        return (0.3 + 0.4 * shape) * gpu["memory_total_bytes"]
    if metric == "gpu_temperature_celsius":
        return 45 + 30 * shape
    return 120 + 250 * shape


def seed(agent: FakeAgent) -> None:
    """Fill ``agent`` with a fixed, realistic fleet member's data."""
    agent.host = _host(agent.name)
    agent.serving = {"state": "running", "pid": 3100, "port": 8500, "url": None}
    _seed_jobs_and_runs(agent)
    _seed_models_and_releases(agent)
    _seed_drift_and_alerts(agent)
    _seed_audit(agent)


def _seed_jobs_and_runs(agent: FakeAgent) -> None:
    """Jobs, runs (one running) and their logs."""
    agent.jobs = [
        {
            "name": "shuttle",
            "model": "shuttle",
            "configured": True,
            "trigger": {"cron": "0 3 * * *", "timezone": "UTC"},
            "scheduled": True,
            "next_fire_at": NOW + 19 * 3600,
            "last_fire": {
                "outcome": "started",
                "recorded_at": NOW - 5 * 3600,
                "run_id": 7,
            },
            "active_run": 7,
        },
        {
            "name": "iris",
            "model": "iris",
            "configured": True,
            "trigger": {"interval_seconds": 21600},
            "scheduled": True,
            "next_fire_at": NOW + 2 * 3600 + 300,
            "last_fire": None,
            "active_run": None,
        },
    ]
    agent.runs = [
        _run(5, "shuttle", "failed", NOW - 3 * 86400, 95, error="CUDA out of memory"),
        _run(
            6,
            "iris",
            "succeeded",
            NOW - 86400,
            250,
            metrics={"accuracy": 0.973, "f1": 0.968},
        ),
        _run(
            7,
            "shuttle",
            "running",
            NOW - 754,
            None,
            progress={"epoch": 12, "step": 2280, "loss": 0.0412},
            pid=4242,
        ),
    ]
    agent.logs = {
        7: "".join(
            f"epoch {e:2d} loss {0.5 / e:.4f} validation_loss {0.6 / e:.4f}\n"
            for e in range(1, 13)
        ),
        6: "training iris\ndone\n",
        5: "Traceback (most recent call last):\nRuntimeError: CUDA out of memory\n",
    }


def _seed_models_and_releases(agent: FakeAgent) -> None:
    """Models, versions, deployments and releases, one canary among them."""
    agent.models = [
        {
            "name": "iris",
            "latest_version": 1,
            "version_count": 1,
            "stable_version": 1,
            "canary_version": None,
            "canary_weight": None,
            "configured": True,
        },
        {
            "name": "shuttle",
            "latest_version": 5,
            "version_count": 5,
            "stable_version": 3,
            "canary_version": 4,
            "canary_weight": 0.1,
            "configured": True,
        },
    ]
    agent.versions = {
        "shuttle": [_version("shuttle", n) for n in range(1, 6)],
        "iris": [_version("iris", 1)],
    }
    agent.deployments = [
        {
            "model": "iris",
            "stable_version": 1,
            "canary_version": None,
            "canary_weight": 0.0,
            "release_id": 1,
            "updated_at": NOW - 9 * 86400,
            "rollback_version": None,
        },
        {
            "model": "shuttle",
            "stable_version": 3,
            "canary_version": 4,
            "canary_weight": 0.1,
            "release_id": 4,
            "updated_at": NOW - 1800,
            "rollback_version": 2,
        },
    ]
    agent.live = {
        "shuttle": {
            "stable": {"version": 3, **_stats(1500, 2, 0.0047, 0.0031)},
            "canary": {"version": 4, **_stats(500, 0, 0.004, 0.0033)},
        },
        "iris": {"stable": {"version": 1, **_stats(0, 0, None, None)}},
    }
    agent.releases = [
        _release(1, "iris", 1, "promoted", "alice", NOW - 9 * 86400, ["bob"]),
        _release(2, "shuttle", 2, "promoted", "alice", NOW - 6 * 86400, ["bob"]),
        _release(3, "shuttle", 3, "promoted", "alice", NOW - 2 * 86400, ["carol"]),
        _release(4, "shuttle", 4, "canary", "alice", NOW - 3600, ["bob"]),
        _release(5, "shuttle", 5, "pending", "alice", NOW - 600, []),
    ]
    agent.releases[3].update(
        canary_weight=0.1,
        verdict={
            "decided": False,
            "passed": None,
            "summary": "Waiting: 1800 of 3600 s and 1013 of 2000 canary requests.",
            "elapsed_seconds": 1800.0,
            "stable": _stats(9120, 2, 0.00099, 0.0113),
            "canary": _stats(1013, 0, 0.0, 0.0121),
            "checks": [
                {"name": "nonfinite", "passed": True, "detail": "No non-finite rows."},
                {
                    "name": "server_errors",
                    "passed": True,
                    "detail": "No server errors.",
                },
            ],
        },
    )


def _seed_drift_and_alerts(agent: FakeAgent) -> None:
    """Drift monitors, drift events and alerts."""
    agent.monitors = [
        _monitor(1, "f1", "adwin", "watching", [0.1, 0.12, 0.11, 0.1, 0.13, 0.12], 0),
        _monitor(2, "f2", "kswin", "drifting", [0.1, 0.12, 0.2, 0.35, 0.5, 0.7], 2),
        _monitor(3, "error", "page-hinkley", "warming_up", [], 0),
    ]
    agent.drift_events = [
        {
            "id": 1,
            "model": "shuttle",
            "version": 3,
            "signal": "f2",
            "detector": "kswin",
            "sample_index": 10412,
            "ts": NOW - 7200,
            "stats": {"p_value": 0.0004, "d": 0.21},
        },
        {
            "id": 2,
            "model": "shuttle",
            "version": 3,
            "signal": "f2",
            "detector": "kswin",
            "sample_index": 12988,
            "ts": NOW - 1500,
            "stats": {"p_value": 0.0001, "d": 0.27},
        },
    ]
    agent.alerts = [
        {
            "id": 1,
            "kind": "run_failed",
            "severity": "warning",
            "source": "run/5",
            "message": "Run 5 of shuttle failed: CUDA out of memory",
            "created_at": NOW - 3 * 86400,
            "acknowledged_by": "alice",
            "acknowledged_at": NOW - 3 * 86400 + 600,
        },
        {
            "id": 2,
            "kind": "drift",
            "severity": "warning",
            "source": "shuttle/f2",
            "message": "kswin found drift on shuttle feature f2 at sample 12988",
            "created_at": NOW - 1500,
            "acknowledged_by": None,
            "acknowledged_at": None,
        },
        {
            "id": 3,
            "kind": "gpu_lost",
            "severity": "critical",
            "source": "gpu/2",
            "message": "GPU 2 is lost (NVML: GPU is lost); its siblings still report",
            "created_at": NOW - 300,
            "acknowledged_by": None,
            "acknowledged_at": None,
        },
    ]


def _seed_audit(agent: FakeAgent) -> None:
    """The audit entries of the seeded history, with their own times."""
    agent.audit = []
    for ts, actor, action, target, reason in (
        (NOW - 9 * 86400, "bob", "release.approve", "release/1", "iris baseline"),
        (NOW - 2 * 86400, "carol", "release.approve", "release/3", "better recall"),
        (NOW - 3600, "alice", "release.request", "release/4", "retrained on May data"),
        (NOW - 3500, "bob", "release.approve", "release/4", "gates pass"),
        (NOW - 754, "scheduler", "job.trigger", "job/shuttle", None),
        (NOW - 600, "alice", "release.request", "release/5", "f2 drift fix"),
    ):
        agent.clock = lambda ts=ts: ts
        agent._record(actor, action, target, reason)
    agent.clock = lambda: NOW


def _stats(requests: int, errors: int, error_rate: float, p95: float) -> dict:
    return {
        "requests": requests,
        "rows": requests,
        "server_errors": 0,
        "nonfinite_rows": 0,
        "latency_p95_seconds": p95,
        "labelled": requests // 4,
        "label_errors": errors,
        "error_rate": error_rate,
    }


def _monitor(monitor_id, signal, detector, status, recent, detections) -> dict:
    return {
        "id": monitor_id,
        "model": "shuttle",
        "role": "stable",
        "version": 3,
        "signal": signal,
        "detector": detector,
        "settings": {},
        "status": status,
        "counts": {"accepted": 13000, "non_finite": 0, "detections": detections},
        "recent_values": recent,
        "updated_at": NOW - 5,
    }


def _host(name: str) -> dict[str, Any]:
    gpu = {
        "state": "ok",
        "name": "NVIDIA A100-SXM4-80GB",
        "memory_total_bytes": 80 * GIB,
        "temperature_celsius": 61,
        "power_watts": 287.0,
        "power_limit_watts": 400.0,
        "field_status": {},
    }
    return {
        "name": name,
        "region": "eu",
        "hostname": f"{name}.lab",
        "platform": "Linux",
        "software": {"rigdeck": "0.1.0", "python": "3.11.7", "torch": "2.13.0"},
        "sample_ts": NOW - 1,
        "cpu": {"utilization_ratio": 0.37, "core_utilization_ratios": [0.4] * 32},
        "load": {"1m": 11.8, "5m": 10.2, "15m": 9.7},
        "memory": {"total_bytes": 256 * GIB, "used_bytes": 97 * GIB},
        "swap": {"total_bytes": 8 * GIB, "used_bytes": 0},
        "disks": [
            {"mountpoint": "/", "total_bytes": 1800 * GIB, "used_bytes": 742 * GIB}
        ],
        "gpu": {
            "status": "ok",
            "reason": None,
            "message": None,
            "driver_version": "550.54.15",
            "gpus": [
                {
                    **gpu,
                    "index": 0,
                    "uuid": "GPU-0",
                    "utilization_ratio": 0.93,
                    "memory_used_bytes": 61 * GIB,
                    "processes": [
                        {"pid": 4242, "used_memory_bytes": 58 * GIB, "name": "python"}
                    ],
                },
                {
                    **gpu,
                    "index": 1,
                    "uuid": "GPU-1",
                    "utilization_ratio": 0.18,
                    "memory_used_bytes": 9 * GIB,
                    "power_watts": None,
                    "field_status": {"power_watts": "not_supported"},
                    "processes": [
                        {"pid": 3100, "used_memory_bytes": 8 * GIB, "name": "python"},
                        {"pid": 999, "used_memory_bytes": 1 * GIB, "name": "Xorg"},
                    ],
                },
                {
                    "index": 2,
                    "uuid": None,
                    "name": None,
                    "state": "lost",
                    "utilization_ratio": None,
                    "memory_used_bytes": None,
                    "memory_total_bytes": None,
                    "processes": None,
                    "field_status": {},
                },
            ],
        },
    }


def _run(
    run_id,
    model,
    state,
    started,
    seconds,
    *,
    metrics=None,
    progress=None,
    pid=None,
    error=None,
) -> dict[str, Any]:
    return {
        "id": run_id,
        "job": model,
        "model": model,
        "state": state,
        "trigger": "schedule",
        "requested_by": None,
        "created_at": started - 2,
        "started_at": started,
        "finished_at": None if seconds is None else started + seconds,
        "pid": pid,
        "gpus": [0],
        "progress": progress,
        "metrics": metrics or {},
        "error": error,
        "spec": {"recipe": {"params": {"max_epochs": 30}}},
    }


def _version(model: str, number: int) -> dict[str, Any]:
    failed = model == "shuttle" and number == 2
    accuracy = 0.990 + number * 0.0015
    gates = [
        {
            "gate": "metric-threshold",
            "passed": not failed,
            "reason": f"accuracy {accuracy:.4f} {'<' if failed else '>='} 0.99",
        },
        {
            "gate": "residency",
            "passed": True,
            "reason": "data region eu is allowed in eu",
        },
    ]
    return {
        "id": number,
        "model": model,
        "number": number,
        "run_id": number + 1,
        "created_at": NOW - (6 - number) * 86400,
        "metrics": {
            "accuracy": round(accuracy - (0.01 if failed else 0), 4),
            "f1": round(0.90 + number * 0.01, 3),
            "recall": round(0.94 + number * 0.005, 3),
        },
        "lineage": {
            "data_sha256": f"{number:x}" * 64,
            "recipe": "tabular-mlp",
            "torch": "2.13.0",
            "host": "gpu-a.lab",
            "region": "eu",
        },
        "gate_state": "failed" if failed else "passed",
        "gates": gates,
        "releasable": not failed,
        "releasable_reason": "Its gates failed: metric-threshold."
        if failed
        else "All gates passed.",
    }


def _release(release_id, model, version, state, requested_by, created, approvers):
    return {
        "id": release_id,
        "model": model,
        "version": version,
        "state": state,
        "requested_by": requested_by,
        "reason": f"release {model} v{version}",
        "approvals_required": 1,
        "approvals": [
            {
                "actor": a,
                "decision": "approve",
                "reason": "looks good",
                "ts": created + 60,
            }
            for a in approvers
        ],
        "canary_weight": None,
        "created_at": created,
        "updated_at": created + 60,
    }
