"""The demo's hosts, and the person who approves, promotes and rolls back.

Where a person acts (the approvals, the promotion, the rollback), a
``Person`` acts for them. The headless demo's ``ApproverBot`` acts at once
with the demo approver token. The UI demo's ``WaitForUser`` shows what to
do on the console's banner, and waits until the user has done it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

# How long the UI demo waits for the user to act, and how often it polls.
USER_TIMEOUT_SECONDS = 3600.0
USER_POLL_SECONDS = 0.5


class DemoFailed(RuntimeError):
    """A stage of the demo did not complete."""


@dataclass
class DemoHost:
    """One demo agent: its URLs, config, data set and tokens."""

    name: str
    model: str
    url: str
    config: Path
    workdir: Path
    source: str
    held_out_from: int
    operator_token: str
    approver_token: str
    # Returns why the host's agent is gone, or None while it runs.
    exited: Callable[[], str | None] = lambda: None
    # Tests reach a canned agent through this instead of the network.
    transport: httpx.AsyncBaseTransport | None = None

    def client(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            transport=self.transport,
        )


class Person(Protocol):
    """The approver who approves, promotes and rolls back: a bot or the user."""

    async def approve(self, host: DemoHost, release: dict) -> None: ...

    async def promote(self, host: DemoHost, release: dict) -> None: ...

    async def roll_back(self, host: DemoHost) -> None: ...


class ApproverBot:
    """The headless demo's person: acts at once with the demo tokens."""

    async def approve(self, host: DemoHost, release: dict) -> None:
        async with host.client(host.approver_token) as http:
            await post(
                http,
                f"/api/v1/releases/{release['id']}/approve",
                {"reason": "demo: gates passed, approved by the demo approver"},
            )

    async def promote(self, host: DemoHost, release: dict) -> None:
        async with host.client(host.approver_token) as http:
            await post(
                http,
                f"/api/v1/releases/{release['id']}/promote",
                {"reason": "demo: the canary passed its analysis"},
            )

    async def roll_back(self, host: DemoHost) -> None:
        async with host.client(host.operator_token) as http:
            await post(
                http,
                f"/api/v1/models/{host.model}/rollback",
                {"reason": "demo: rolling back to show it"},
            )


class WaitForUser:
    """The UI demo's person: shows what to do, and waits until the user has done it.

    Args:
        instruct: ``instruct(key, message)`` shows one step for the user
            until it is called again with the same key; a message of None
            marks it done. Both hosts' steps can wait at once. A message
            starts with what to do, then ": " and how.
    """

    def __init__(self, instruct: Callable[[str, str | None], None]) -> None:
        self.instruct = instruct

    async def approve(self, host: DemoHost, release: dict) -> None:
        await self._until_release_leaves(
            host,
            release,
            "pending",
            f"approve release {release['id']} ({host.model} v{release['version']} "
            f"on {host.name}): :releases, select its ! pending row, press a, type a "
            "reason, Enter.",
        )

    async def promote(self, host: DemoHost, release: dict) -> None:
        await self._until_release_leaves(
            host,
            release,
            "canary",
            f"promote release {release['id']} ({host.model} v{release['version']}), "
            "whose canary passed: on :releases, select its ◇ canary row and press "
            "p, with a reason (A aborts it).",
        )

    async def roll_back(self, host: DemoHost) -> None:
        live = await stable_version(host)

        async def rolled_back() -> bool:
            return await stable_version(host) != live

        await self._until(
            f"{host.name} rollback",
            f"roll back {host.model} from version {live}: on :releases, select its "
            "★ live row and press b, with a reason. The demo then requests it "
            "again for you to approve and promote: the roll forward.",
            rolled_back,
        )

    async def _until_release_leaves(
        self, host: DemoHost, release: dict, state: str, message: str
    ) -> None:
        async def left() -> bool:
            async with host.client(host.operator_token) as http:
                current = await get(http, f"/api/v1/releases/{release['id']}")
            return current["state"] != state

        await self._until(f"{host.name} release {release['id']}", message, left)

    async def _until(
        self, key: str, message: str, done: Callable[[], Awaitable[bool]]
    ) -> None:
        self.instruct(key, message)
        deadline = time.monotonic() + USER_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if await done():
                self.instruct(key, None)
                return
            await asyncio.sleep(USER_POLL_SECONDS)
        raise DemoFailed(
            f"gave up waiting for you to do this after {USER_TIMEOUT_SECONDS:.0f} s: "
            f"{message}"
        )


async def stable_version(host: DemoHost) -> int | None:
    """Return the version ``host`` serves as stable for its model, if any."""
    async with host.client(host.operator_token) as http:
        deployments = await get(http, "/api/v1/deployments")
    for item in deployments["items"]:
        if item["model"] == host.model:
            return item["stable_version"]
    return None


async def get(http: httpx.AsyncClient, path: str, params: dict | None = None) -> Any:
    response = await http.get(path, params=params)
    if response.status_code >= 400:
        raise DemoFailed(f"GET {path} returned {response.status_code}: {response.text}")
    return response.json()


async def post(http: httpx.AsyncClient, path: str, body: dict) -> Any:
    response = await http.post(path, json=body)
    if response.status_code >= 400:
        message = response.json().get("error", {}).get("message", response.text)
        raise DemoFailed(f"POST {path} failed: {message}")
    return response.json()
