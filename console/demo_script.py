"""The scripted demo operator of ``rigdeck demo``.

The demo operator trains version 1 of ``shuttle`` and requests its release.
You approve it in the console as the second person the four-eyes rule
needs. Once it is live, the operator trains version 2 and requests its
release too, which goes through a canary you can watch, promote and roll
back. The script uses the agent's HTTP API only, runs in an async worker
of the console, and shows each next step as a notification.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import httpx

logger = logging.getLogger(__name__)

MODEL = "shuttle"
POLL_SECONDS = 1.0
TRAIN_TIMEOUT_SECONDS = 600.0
APPROVAL_TIMEOUT_SECONDS = 3600.0


class DemoScript:
    """Drive the demo operator's side of the release flow.

    Args:
        url: the agent's control API.
        operator_token: the demo operator's bearer token.
        on_live: called once version 1 serves, to start the replayer.
    """

    def __init__(
        self,
        url: str,
        operator_token: str,
        on_live: Callable[[], None] = lambda: None,
    ) -> None:
        self.url = url
        self.operator_token = operator_token
        self._on_live = on_live

    async def run(self, notify: Callable[[str], None]) -> None:
        """Run every step, showing the user each next one through ``notify``."""
        self._notify = notify
        async with httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.operator_token}"},
            timeout=30,
        ) as http:
            self._http = http
            try:
                await self._steps()
            except (httpx.HTTPError, RuntimeError) as error:
                logger.warning("the demo script stopped: %s", error)
                self._notify(f"The demo script stopped: {error}")

    async def _steps(self) -> None:
        for version in (1, 2):
            await self._train(version)
            release = await self._post(
                "/api/v1/releases",
                {"model": MODEL, "version": version, "reason": "demo: a new version"},
            )
            self._notify(
                f"Version {version} of {MODEL} is trained and its release waits "
                "for you: type :releases, select it and press a to approve."
            )
            await self._wait_for_release(release["id"], version)
            if version == 1:
                await self._wait(
                    lambda: self._field("/api/v1/serving", "state"),
                    {"running", "failed"},
                    TRAIN_TIMEOUT_SECONDS,
                )
                self._on_live()
                self._notify(
                    "Version 1 is live and the replayer sends it Shuttle rows "
                    "with feedback labels. Type :drift to see the monitors."
                )
        self._notify(
            "Done: version 2 is live. Press b on the Releases screen to roll "
            "back to version 1, and verify the audit log with :audit then v."
        )

    async def _train(self, version: int) -> None:
        run = await self._post(f"/api/v1/jobs/{MODEL}/trigger", {"reason": "demo"})
        self._notify(
            f"The demo operator started training version {version} of {MODEL} "
            f"(run {run['id']}). Type :runs to watch it, l for its log."
        )
        state = await self._wait(
            lambda: self._field(f"/api/v1/runs/{run['id']}", "state"),
            {"succeeded", "failed", "cancelled", "timed_out", "interrupted"},
            TRAIN_TIMEOUT_SECONDS,
        )
        if state != "succeeded":
            raise RuntimeError(f"run {run['id']} ended {state}")

    async def _wait_for_release(self, release_id: int, version: int) -> None:
        canary_notified = False

        async def state() -> str:
            nonlocal canary_notified
            value = await self._field(f"/api/v1/releases/{release_id}", "state")
            if value == "canary" and not canary_notified:
                canary_notified = True
                self._notify(
                    f"Version {version} is a canary now. Watch its figures on "
                    ":releases, then press p to promote it (or A to abort)."
                )
            return value

        final = await self._wait(
            state, {"promoted", "rejected", "aborted"}, APPROVAL_TIMEOUT_SECONDS
        )
        if final != "promoted":
            raise RuntimeError(f"release {release_id} was {final}")

    async def _wait(
        self, read: Callable[[], Awaitable[str]], done: set[str], timeout: float
    ) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await read()
            if value in done:
                return value
            await asyncio.sleep(POLL_SECONDS)
        raise RuntimeError(f"gave up after {timeout:.0f} s")

    async def _field(self, path: str, key: str) -> str:
        response = await self._http.get(path)
        response.raise_for_status()
        return response.json()[key]

    async def _post(self, path: str, body: dict) -> dict:
        response = await self._http.post(path, json=body)
        if response.status_code >= 400:
            message = response.json().get("error", {}).get("message", response.text)
            raise RuntimeError(f"POST {path} failed: {message}")
        return response.json()
