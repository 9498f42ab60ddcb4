"""The rigdeck console: a Textual app over many agents."""

from __future__ import annotations

import asyncio
import time

from textual.app import App

from console.client import AgentClient
from console.config import AgentEntry
from console.errors import AgentRequestError
from console.messages import AgentPolled
from console.screens import FleetScreen

POLL_SECONDS = 2.0


class RigdeckApp(App):
    """Watch a fleet of agents; all agent I/O runs in async workers."""

    TITLE = "rigdeck"

    def __init__(self, agents: list[AgentEntry], readonly: bool = False) -> None:
        super().__init__()
        self.readonly = readonly
        self.clients = [AgentClient(entry) for entry in agents]

    def on_mount(self) -> None:
        self.sub_title = f"{len(self.clients)} agent(s)" + (
            " · read-only" if self.readonly else ""
        )
        self.push_screen(FleetScreen())
        self.set_interval(POLL_SECONDS, self.action_refresh_now)
        self.action_refresh_now()

    def action_refresh_now(self) -> None:
        for client in self.clients:
            self.poll_agent(client)

    def poll_agent(self, client: AgentClient) -> None:
        """Start a poll of ``client`` unless one is still waiting for an answer."""
        if client.in_flight_since is not None:
            client.note_waiting()
            self.post_message(AgentPolled(client.name))
            return
        self.run_worker(
            self._poll(client), group=f"poll-{client.name}", exit_on_error=False
        )

    async def _poll(self, client: AgentClient) -> None:
        client.in_flight_since = time.monotonic()
        try:
            host, alerts = await asyncio.gather(
                client.get("/api/v1/host"), client.get("/api/v1/alerts", open="true")
            )
            client.status.data = {"host": host, "open_alerts": len(alerts["items"])}
        except AgentRequestError as error:
            self.log.warning(str(error))
        finally:
            client.in_flight_since = None
        self.post_message(AgentPolled(client.name))

    def on_agent_polled(self, message: AgentPolled) -> None:
        screen = self.screen
        if isinstance(screen, FleetScreen):
            screen.refresh_rows()

    async def on_unmount(self) -> None:
        for client in self.clients:
            await client.aclose()
