"""The demo's hosts, and the person who approves, promotes and rolls back.

Where a person acts (the approvals, the promotion, the rollback), a
``Person`` acts for them. The headless demo's ``ApproverBot`` acts at once
with the demo approver token. The UI demo's ``WaitForUser`` shows what to
press, and the loop waits until the user has done it in the console.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx


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

    def client(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
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
    """The UI demo's person: shows what to press, and the loop waits for it."""

    def __init__(self, notify: Callable[[str], None]) -> None:
        self.notify = notify

    async def approve(self, host: DemoHost, release: dict) -> None:
        self.notify(
            f"Version {release['version']} of {host.model} on {host.name} waits for "
            "your approval: type :releases, select its row, press a, type a reason "
            "and press Enter."
        )

    async def promote(self, host: DemoHost, release: dict) -> None:
        self.notify(
            f"The canary of version {release['version']} of {host.model} passed its "
            "analysis. On :releases, select it and press p to promote it (A aborts "
            "it), with a reason."
        )

    async def roll_back(self, host: DemoHost) -> None:
        self.notify(
            f"Version 2 of {host.model} is live. On :releases, press b to roll back "
            "to version 1, with a reason; the demo then requests version 2 again "
            "for you to approve and promote: the roll forward."
        )


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
