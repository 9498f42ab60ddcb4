"""Routing of each request to one loaded version, and atomic swaps of versions.

A thread reads the ``deployments`` table every ``poll_seconds``. When a
model's stable version, canary version or weight changed, it loads what
is missing, then replaces the model's ``Route`` in one assignment. A
request reads the route once and keeps the version it picked to the end,
so a swap never splits a request between two versions and requests in
flight finish on the version they started with.

A version that fails verification or loading never enters a route. A
canary that fails leaves stable serving alone; a new stable version that
fails leaves the previous stable version serving. The error is stored in
``versions.load_error`` with an audit entry, and versions marked that
way are not loaded again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.serving.worker.loader import LoadError, ServedVersion, load_version
from store import Store, audit
from store import deployments as deployment_rows
from store import versions as version_rows

logger = logging.getLogger(__name__)

WORKER_ACTOR = "serving-worker"


@dataclass(frozen=True)
class Route:
    """The loaded versions of one model, read once per request, replaced on a swap."""

    model: str
    stable: ServedVersion | None
    canary: ServedVersion | None
    canary_weight: float
    problems: tuple[str, ...] = ()

    def pick(self, draw: float) -> ServedVersion | None:
        """Return the canary when ``draw`` (uniform in [0, 1)) falls in its share."""
        if self.canary is not None and draw < self.canary_weight:
            return self.canary
        return self.stable

    def version(self, number: int) -> ServedVersion | None:
        for served in (self.stable, self.canary):
            if served is not None and served.number == number:
                return served
        return None

    def describe(self) -> str:
        served = [
            f"version {served.number} ({role})"
            for role, served in (("stable", self.stable), ("canary", self.canary))
            if served is not None
        ]
        return ", ".join(served) or "nothing"


@dataclass
class _Applied:
    stable: int | None
    canary: int | None
    weight: float


@dataclass
class ModelRouter:
    """Keeps every model's route in step with the store.

    Args:
        store: the agent's store.
        poll_seconds: seconds between two reads of ``deployments``.
        on_swap: called with the model name after each swap (metrics).
        on_load_failure: called with the model name when a version fails.
        loader: loads a version row; tests pass a fake.
    """

    store: Store
    poll_seconds: float
    on_swap: Callable[[Route], None] = lambda route: None
    on_load_failure: Callable[[str], None] = lambda model: None
    loader: Callable[[dict[str, Any]], ServedVersion] = load_version
    routes: dict[str, Route] = field(default_factory=dict)
    polled: bool = False
    _applied: dict[str, _Applied] = field(default_factory=dict)
    _loaded: dict[tuple[str, int], ServedVersion] = field(default_factory=dict)
    _failed: dict[tuple[str, int], str] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Restore every recorded deployment, then follow changes in a thread."""
        self.poll()
        self._thread = threading.Thread(
            target=self._loop, name="deployment-poller", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def ready(self) -> bool:
        """Whether every deployed model has a loaded stable version."""
        return self.polled and all(
            route.stable is not None for route in self.routes.values()
        )

    def poll(self) -> None:
        """Apply every deployment that changed since the last poll."""
        rows = deployment_rows.list_deployments(self.store.db, limit=1_000_000)
        for row in rows:
            applied = _Applied(
                row["stable_version"], row["canary_version"], row["canary_weight"]
            )
            if self._applied.get(row["model"]) != applied:
                self._apply(row["model"], applied)
        self.polled = True

    def _loop(self) -> None:
        while not self._stopping.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:
                logger.exception("reading the deployments failed; retrying")

    def _apply(self, model: str, applied: _Applied) -> None:
        problems: list[str] = []
        stable = self._served(model, applied.stable, problems)
        canary = self._served(model, applied.canary, problems)

        current = self.routes.get(model)
        if stable is None and applied.stable is not None and current is not None:
            # A new stable version that cannot load never takes traffic: the
            # version serving now goes on serving alone.
            stable, canary = current.stable, None
            if stable is not None:
                problems.append(
                    f"Version {stable.number} keeps serving instead of version "
                    f"{applied.stable}."
                )

        route = Route(
            model=model,
            stable=stable,
            canary=canary,
            canary_weight=applied.weight if canary is not None else 0.0,
            problems=tuple(problems),
        )
        routes = dict(self.routes)
        routes[model] = route
        # One reference assignment, so a request reads the old route or the new one.
        self.routes = routes
        self._applied[model] = applied

        self._preload_rollback_target(model)
        self._evict(model, applied)
        self.on_swap(route)
        logger.info(
            "model %s now serves %s (canary weight %s)",
            model,
            route.describe(),
            route.canary_weight,
        )

    def _served(
        self, model: str, number: int | None, problems: list[str]
    ) -> ServedVersion | None:
        if number is None:
            return None
        key = (model, number)
        if key in self._loaded:
            return self._loaded[key]
        if key in self._failed:
            problems.append(self._failed[key])
            return None
        version = version_rows.find_version(self.store.db, model, number)
        if version is None:
            message = f"Model {model!r} has no version {number} in the store."
        elif version["load_error"]:
            message = version["load_error"]
        else:
            try:
                self._loaded[key] = self.loader(version)
                logger.info("loaded version %s of model %s", number, model)
                return self._loaded[key]
            except LoadError as error:
                message = str(error)
                self._record_failure(model, number, message)
        self._failed[key] = message
        problems.append(message)
        return None

    def _record_failure(self, model: str, number: int, message: str) -> None:
        logger.error(
            "version %s of model %s takes no traffic: %s", number, model, message
        )
        self.on_load_failure(model)
        with self.store.write() as db:
            deployment_rows.mark_load_error(db, model, number, message)
            audit.append_entry(
                db,
                actor=WORKER_ACTOR,
                action="version.load_failed",
                target=f"model/{model}/version/{number}",
                reason=message,
                before={"load_error": None},
                after={"load_error": message},
            )

    def _preload_rollback_target(self, model: str) -> None:
        # A rollback must not wait for a load, so its target stays in memory.
        target = deployment_rows.rollback_target(self.store.db, model)
        if target is not None:
            self._served(model, target, [])

    def _evict(self, model: str, applied: _Applied) -> None:
        keep = {applied.stable, applied.canary}
        keep.add(deployment_rows.rollback_target(self.store.db, model))
        for key in [key for key in self._loaded if key[0] == model]:
            if key[1] not in keep:
                del self._loaded[key]
