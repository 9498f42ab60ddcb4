"""The loop ``rigdeck demo`` runs on two local agents, with or without the UI.

Host A serves ``shuttle``. Version 1 is trained, released and goes live.
The replayer sends the held-out Shuttle rows with feedback labels. From
``SHIFT_ROW`` on it adds one standard deviation to feature f1, a sensor
offset that multiplies version 1's error rate. The drift monitors raise
an event and an alert; retraining on drift (after
``retrain_min_labels`` labels of the changed traffic) trains version 2;
its release goes through approval and a canary, is promoted, rolled back
and rolled forward. Host B serves ``phishing`` next to it.

Every step goes through the agents' HTTP APIs; a ``Person`` (see
``console.demo.people``) approves, promotes and rolls back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from console.demo.people import (
    DemoFailed,
    DemoHost,
    Person,
    get,
    post,
    stable_version,
)
from console.demo.replay import REPLAY_WINDOW_ROWS, Replay, Window, error_rate

POLL_SECONDS = 0.5
STAGE_TIMEOUT_SECONDS = 300.0
APPROVAL_TIMEOUT_SECONDS = 3600.0
REPLAY_RATE = 150.0
SHIFT_FEATURE = "f1"
SHIFT_STD = 1.0
SHIFT_ROW = 3000
# Rows served by version 2 after its promotion, over which the error rate
# after the promotion is measured.
AFTER_PROMOTION_ROWS = 1500
FINAL_STATES = {"succeeded", "failed", "cancelled", "timed_out", "interrupted"}


@dataclass
class Stage:
    host: str
    name: str
    seconds: float
    detail: str


@dataclass
class Summary:
    """The stages and figures of one demo run, printed by the headless demo."""

    stages: list[Stage] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None

    def lines(self) -> list[str]:
        out = ["", "Stages (seconds since the start):"]
        for stage in self.stages:
            out.append(
                f"  {stage.seconds:6.1f}  {stage.host:<12} {stage.name:<26} "
                f"{stage.detail}"
            )
        out.append("")
        out.append("Figures:")
        width = max((len(key) for key in self.figures), default=0)
        for key, value in self.figures.items():
            out.append(f"  {key:<{width}}  {value}")
        out.append("")
        if self.failure:
            out.append(f"FAILED: {self.failure}")
        else:
            out.append("Every stage completed.")
        return out


class DemoLoop:
    """Run the demo's stages on host A (shuttle) and host B (phishing).

    Args:
        host_a: the shuttle agent; the drift and release loop runs here.
        host_b: the phishing agent; trained, released and served.
        person: approves, promotes and rolls back.
        notify: shows one message to the user (a line or a notification).
        console: the user watches in the console, so messages name its
            screens.
        started: ``time.monotonic()`` when the demo started, which stage
            times count from; default now.
    """

    def __init__(
        self,
        host_a: DemoHost,
        host_b: DemoHost,
        person: Person,
        notify: Callable[[str], None],
        console: bool = False,
        started: float | None = None,
    ) -> None:
        self.host_a = host_a
        self.host_b = host_b
        self.person = person
        self._notify = notify
        self.console = console
        self.summary = Summary()
        self.replays: list[Replay] = []
        self._started = time.monotonic() if started is None else started

    async def run(self) -> Summary:
        """Run every stage; return the stages that completed and their figures."""
        try:
            await asyncio.gather(self._host_a(), self._host_b())
            await self._verify_audit()
            if self.console:
                self._tell(
                    f"Every stage completed in {self._elapsed():.0f} s. Look around "
                    "(:audit, then v, verifies the chain); :quit stops the agents."
                )
        except (DemoFailed, httpx.HTTPError) as error:
            self.summary.failure = str(error) or type(error).__name__
            self._tell(f"The demo stopped: {self.summary.failure}")
        finally:
            for replay in self.replays:
                await replay.stop()
        self.summary.figures["total seconds"] = round(self._elapsed(), 1)
        return self.summary

    # Host A: the drift and release loop.

    async def _host_a(self) -> None:
        host = self.host_a
        v1 = await self._train(host, 1)
        self.summary.figures["shuttle v1 (validation)"] = _metrics(v1, number=False)
        await self._release_first(host, 1)
        shift = f"{SHIFT_FEATURE}:+{SHIFT_STD:g}std@{SHIFT_ROW}"
        replay = self._replay(host, REPLAY_RATE, shift)
        self._tell(
            f"{host.name}: version 1 is live. The replayer sends held-out Shuttle "
            f"rows with labels; at row {SHIFT_ROW} it adds {SHIFT_STD:g} standard "
            f"deviation to {SHIFT_FEATURE}."
            + self._hint(
                " Type :drift to watch the monitors, :models for each version's "
                "live error rate."
            )
        )
        before = await self._error_before_shift(host, replay)
        await self._detect_drift(host)
        v2 = await self._retrain(host)
        self._error_after_shift(replay, before, v2)
        await self._release_second(host)
        await self._error_after_promotion(host, replay, before)
        await self._roll_back_and_forward(host, replay)

    async def _error_before_shift(self, host: DemoHost, replay: Replay) -> float:
        await self._until(
            lambda: replay.rows_sent() >= SHIFT_ROW + REPLAY_WINDOW_ROWS,
            f"{SHIFT_ROW} rows of live traffic",
        )
        rate, rows = error_rate([w for w in replay.windows if w.rows_sent <= SHIFT_ROW])
        self._stage(
            host, "traffic before the shift", f"error rate {rate:.2%} over {rows} rows"
        )
        self.summary.figures["live error before the shift"] = (
            f"{rate:.2%} ({rows} rows, v1)"
        )
        return rate

    async def _detect_drift(self, host: DemoHost) -> None:
        event = await self._drift_event(host)
        delay = event["sample_index"] - SHIFT_ROW
        self._stage(
            host,
            "drift detected",
            f"{event['signal']} by {event['detector']}, event {event['id']}, "
            f"{delay} rows after the shift",
        )
        self.summary.figures["drift detection delay"] = (
            f"{delay} rows ({event['signal']}, {event['detector']})"
        )
        alert = await self._alert_of(host, event)
        self._stage(host, "alert raised", f"alert {alert['id']}: {alert['message']}")

    async def _retrain(self, host: DemoHost) -> dict:
        run = await self._drift_run(host)
        version = await self._version(host, run)
        lineage = version["lineage"]
        self._stage(
            host,
            "version 2 trained on drift",
            f"run {run['id']}, {lineage['feedback_rows']} of its "
            f"{lineage['data_rows']} rows from feedback, gates "
            f"{version['gate_state']}",
        )
        if version["gate_state"] != "passed":
            raise DemoFailed(f"version 2 failed its gates: {_gate_reasons(version)}")
        return version

    def _error_after_shift(self, replay: Replay, before: float, v2: dict) -> None:
        rate, rows = error_rate(
            [w for w in replay.windows if w.first_row >= SHIFT_ROW and w.only(1)]
        )
        self._stage(
            self.host_a,
            "traffic after the shift",
            f"error rate {rate:.2%} over {rows} rows",
        )
        self.summary.figures["live error after the shift"] = (
            f"{rate:.2%} ({rows} rows, v1)"
        )
        self.summary.figures["shuttle v2 (validation)"] = _metrics(v2, number=False)
        if not rate >= 2 * before:
            raise DemoFailed(
                f"the shift raised the error rate from {before:.2%} only to "
                f"{rate:.2%}, less than double"
            )

    async def _release_second(self, host: DemoHost) -> None:
        release = await self._request(host, 2, "demo: version 2, retrained on drift")
        await self.person.approve(host, release)
        release = await self._wait_release(host, release, {"canary"})
        self._stage(host, "version 2 canary", f"release {release['id']} approved")
        release = await self._canary_verdict(host, release)
        summary = release["verdict"]["summary"]
        self._stage(host, "canary verdict", f"passed: {summary}")
        self.summary.figures["canary verdict"] = f"passed: {summary}"
        await self.person.promote(host, release)
        release = await self._wait_release(host, release, {"promoted"})
        self._stage(host, "version 2 promoted", f"release {release['id']}")

    async def _error_after_promotion(
        self, host: DemoHost, replay: Replay, before: float
    ) -> None:
        windows = await self._windows_of(replay, 2, time.monotonic())
        rate, rows = error_rate(windows)
        self._stage(
            host, "traffic after promotion", f"error rate {rate:.2%} over {rows} rows"
        )
        self.summary.figures["live error after promotion"] = (
            f"{rate:.2%} ({rows} rows, v2)"
        )
        if not rate <= before + 0.01:
            raise DemoFailed(
                f"after the promotion the error rate is {rate:.2%}, more than one "
                f"point above {before:.2%} before the shift"
            )

    async def _roll_back_and_forward(self, host: DemoHost, replay: Replay) -> None:
        await self.person.roll_back(host)
        await self._until_async(
            lambda: _is_stable(host, 1),
            "the rollback to version 1",
            timeout=APPROVAL_TIMEOUT_SECONDS,
        )
        rolled_back_at = time.monotonic()
        windows = await self._windows_of(
            replay, 1, rolled_back_at, rows=REPLAY_WINDOW_ROWS
        )
        self._stage(
            host,
            "rolled back",
            f"version 1 answers again ({sum(w.rows for w in windows)} rows seen)",
        )
        release = await self._request(host, 2, "demo: roll forward to version 2")
        await self.person.approve(host, release)
        release = await self._wait_release(host, release, {"canary"})
        release = await self._canary_verdict(host, release)
        await self.person.promote(host, release)
        await self._wait_release(host, release, {"promoted"})
        self._stage(host, "rolled forward", f"release {release['id']}: version 2 live")

    # Host B: a second model on a second host.

    async def _host_b(self) -> None:
        host = self.host_b
        version = await self._train(host, 1)
        await self._release_first(host, 1)
        self._replay(host, 5.0, None)
        self.summary.figures[f"{host.model} v1 (validation)"] = _metrics(
            version, number=False
        )

    # Steps.

    async def _train(self, host: DemoHost, number: int) -> dict:
        async with host.client(host.operator_token) as http:
            run = await post(
                http,
                f"/api/v1/jobs/{host.model}/trigger",
                {"reason": "demo: first version"},
            )
            self._tell(
                f"{host.name}: training version {number} of {host.model} (run "
                f"{run['id']}).{self._hint(' Type :runs to watch it.')}"
            )
            run = await self._wait_run(http, run["id"])
        version = await self._version(host, run)
        self._stage(
            host,
            f"version {number} trained",
            f"run {run['id']}: {_metrics(version)}, gates {version['gate_state']}",
        )
        return version

    async def _wait_run(self, http: httpx.AsyncClient, run_id: int) -> dict:
        async def finished() -> dict | None:
            run = await get(http, f"/api/v1/runs/{run_id}")
            return run if run["state"] in FINAL_STATES else None

        run = await self._until_async(finished, f"run {run_id}")
        if run["state"] != "succeeded":
            raise DemoFailed(f"run {run_id} ended {run['state']}: {run['error']}")
        return run

    async def _version(self, host: DemoHost, run: dict) -> dict:
        async with host.client(host.operator_token) as http:
            versions = await get(
                http, f"/api/v1/models/{host.model}/versions", {"limit": 20}
            )
        for version in versions["items"]:
            if version["run_id"] == run["id"]:
                return version
        raise DemoFailed(f"run {run['id']} registered no version of {host.model}")

    async def _release_first(self, host: DemoHost, number: int) -> None:
        release = await self._request(host, number)
        await self.person.approve(host, release)
        await self._wait_release(host, release, {"promoted"})

        async def serving() -> bool:
            async with host.client(host.operator_token) as http:
                state = await get(http, "/api/v1/serving")
            return state["state"] == "running"

        await self._until_async(serving, f"{host.name}'s serving worker")
        self._stage(host, f"version {number} live", f"release {release['id']}")

    async def _request(
        self, host: DemoHost, number: int, reason: str = "demo: a new version"
    ) -> dict:
        async with host.client(host.operator_token) as http:
            return await post(
                http,
                "/api/v1/releases",
                {"model": host.model, "version": number, "reason": reason},
            )

    async def _wait_release(self, host: DemoHost, release: dict, states: set) -> dict:
        ended = {"rejected", "aborted", "rolled_back"} - states

        async def reached() -> dict | None:
            async with host.client(host.operator_token) as http:
                current = await get(http, f"/api/v1/releases/{release['id']}")
            if current["state"] in ended:
                raise DemoFailed(
                    f"release {release['id']} was {current['state']}: "
                    f"{current['state_reason']}"
                )
            return current if current["state"] in states else None

        return await self._until_async(
            reached,
            f"release {release['id']} to be {'/'.join(sorted(states))}",
            timeout=APPROVAL_TIMEOUT_SECONDS,
        )

    async def _canary_verdict(self, host: DemoHost, release: dict) -> dict:
        async def verdict() -> dict | None:
            async with host.client(host.operator_token) as http:
                current = await get(http, f"/api/v1/releases/{release['id']}")
            if current["state"] not in ("canary", "promoted"):
                raise DemoFailed(
                    f"the canary of release {release['id']} ended "
                    f"{current['state']}: {current['state_reason']}"
                )
            decided = (current["verdict"] or {}).get("decided")
            return current if decided else None

        current = await self._until_async(verdict, "the canary's verdict")
        if not current["verdict"]["passed"]:
            raise DemoFailed(f"the canary failed: {current['verdict']['summary']}")
        return current

    async def _drift_event(self, host: DemoHost) -> dict:
        async def event() -> dict | None:
            async with host.client(host.operator_token) as http:
                events = await get(http, "/api/v1/drift/events", {"model": host.model})
            stable = [e for e in events["items"] if e["role"] == "stable"]
            return stable[0] if stable else None

        return await self._until_async(event, f"a drift event on {host.model}")

    async def _alert_of(self, host: DemoHost, event: dict) -> dict:
        async with host.client(host.operator_token) as http:
            alerts = await get(http, "/api/v1/alerts", {"limit": 100})
        for alert in alerts["items"]:
            if alert["id"] == event["alert_id"]:
                return alert
        raise DemoFailed(f"drift event {event['id']} raised no alert")

    async def _drift_run(self, host: DemoHost) -> dict:
        async def drift_run() -> dict | None:
            async with host.client(host.operator_token) as http:
                runs = await get(http, "/api/v1/runs", {"model": host.model})
            fired = [run for run in runs["items"] if run["trigger"] == "drift"]
            return fired[0] if fired else None

        run = await self._until_async(drift_run, "the training run fired by the drift")
        self._tell(
            f"{host.name}: the drift fired training run {run['id']} on data that "
            "includes the labelled traffic after the change."
            f"{self._hint(' Type :runs to watch it.')}"
        )
        async with host.client(host.operator_token) as http:
            return await self._wait_run(http, run["id"])

    async def _windows_of(
        self,
        replay: Replay,
        version: int,
        since: float,
        rows: int = AFTER_PROMOTION_ROWS,
    ) -> list[Window]:
        def enough() -> list[Window] | None:
            windows = [
                w for w in replay.windows if w.received > since and w.only(version)
            ]
            return windows if sum(w.rows for w in windows) >= rows else None

        return await self._until(enough, f"{rows} rows answered by version {version}")

    async def _verify_audit(self) -> None:
        for host in (self.host_a, self.host_b):
            async with host.client(host.operator_token) as http:
                verdict = await get(http, "/api/v1/audit/verify")
            self._stage(host, "audit chain", verdict["message"])
            self.summary.figures[f"audit {host.name}"] = verdict["message"]
            if not verdict["ok"]:
                raise DemoFailed(f"{host.name}: {verdict['message']}")

    # Helpers.

    def _replay(self, host: DemoHost, rate: float, shift: str | None) -> Replay:
        replay = Replay(host, rate, shift)
        replay.start()
        self.replays.append(replay)
        return replay

    def _stage(self, host: DemoHost, name: str, detail: str) -> None:
        stage = Stage(host.name, name, round(self._elapsed(), 1), detail)
        self.summary.stages.append(stage)
        self._notify(f"{stage.seconds:6.1f} s  {host.name}: {name}: {detail}")

    def _tell(self, message: str) -> None:
        """Show ``message`` with the seconds since the start, as stages are shown."""
        self._notify(f"{self._elapsed():6.1f} s  {message}")

    def _check_processes(self) -> None:
        """Fail at once when an agent or a replay has exited, naming it."""
        for host in (self.host_a, self.host_b):
            reason = host.exited()
            if reason:
                raise DemoFailed(reason)
        for replay in self.replays:
            if replay.failure:
                raise DemoFailed(replay.failure)

    def _hint(self, text: str) -> str:
        return text if self.console else ""

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    async def _until(self, check: Callable[[], Any], what: str) -> Any:
        async def wrapped() -> Any:
            return check()

        return await self._until_async(wrapped, what)

    async def _until_async(
        self,
        check: Callable[[], Awaitable[Any]],
        what: str,
        timeout: float = STAGE_TIMEOUT_SECONDS,
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_processes()
            value = await check()
            if value:
                return value
            await asyncio.sleep(POLL_SECONDS)
        raise DemoFailed(f"gave up waiting for {what} after {timeout:.0f} s")


async def _is_stable(host: DemoHost, number: int) -> bool:
    return await stable_version(host) == number


def _metrics(version: dict, number: bool = True) -> str:
    metrics = version["metrics"]
    prefix = f"v{version['number']} " if number else ""
    return (
        f"{prefix}accuracy {metrics['accuracy']:.4f}, recall "
        f"{metrics['recall']:.4f}, f1 {metrics['f1']:.4f}"
    )


def _gate_reasons(version: dict) -> str:
    return "; ".join(g["reason"] for g in version.get("gates", []) if not g["passed"])
