"""A run's log, followed while the run is queued or running."""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Log

from console.errors import AgentRequestError
from console.messages import LogChunkFetched
from console.screens.base import ConsoleScreen
from console.screens.reason_dialog import ReasonDialog
from console.screens.runs import ACTIVE_STATES

FOLLOW_SECONDS = 1.0
# Lines kept on screen; older ones scroll away (the agent keeps the file).
MAX_LINES = 20_000


class RunLogScreen(ConsoleScreen):
    """Fetches the log by byte offset, so each poll returns only new text."""

    VIEW = "log"
    BINDINGS = [
        Binding("f", "toggle_follow", "Follow", id="follow"),
        Binding("c", "cancel", "Cancel run", id="cancel"),
    ]

    def __init__(self, agent: str, run_id: int, model: str = "") -> None:
        super().__init__()
        self.agent = agent
        self.run_id = run_id
        self.model = model
        self.log_offset = 0
        self.running = True
        self.run_state: str | None = None
        self.follow = True

    def describe(self) -> str:
        return f"log of run {self.run_id} ({self.model}) on {self.agent}"

    def compose_body(self) -> ComposeResult:
        yield Log(max_lines=MAX_LINES, auto_scroll=True, id="log")

    def on_mount(self) -> None:
        super().on_mount()
        self._follow_log()

    def initial_focus(self) -> Widget | None:
        return self.query_one(Log)

    def selected_agent(self) -> str | None:
        return self.agent

    @work(exclusive=True, group="run-log", exit_on_error=False)
    async def _follow_log(self) -> None:
        client = self.rigdeck.clients[self.agent]
        offset = self.log_offset
        while True:
            try:
                chunk = await client.get(
                    f"/api/v1/runs/{self.run_id}/log", offset=offset
                )
            except AgentRequestError as error:
                self.notify(f"Cannot read the log: {error.message}", severity="error")
                await asyncio.sleep(FOLLOW_SECONDS * 5)
                continue
            self.post_message(
                LogChunkFetched(
                    self.agent,
                    self.run_id,
                    offset,
                    chunk.get("text", ""),
                    chunk["next_offset"],
                    bool(chunk.get("running")),
                    chunk.get("state"),
                )
            )
            more = chunk["next_offset"] > offset
            offset = chunk["next_offset"]
            if not chunk.get("running") and not more:
                return
            if not more:
                await asyncio.sleep(FOLLOW_SECONDS)

    def on_log_chunk_fetched(self, message: LogChunkFetched) -> None:
        if message.offset != self.log_offset:
            return
        self.log_offset = message.next_offset
        self.running = message.running
        self.run_state = message.state
        if message.text:
            self.query_one(Log).write(message.text)
        self.sub_title = self.describe() + f" · {message.state or 'unknown'}"
        self.selection_changed()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        log = self.query_one(Log)
        log.auto_scroll = self.follow
        if self.follow:
            log.scroll_end(animate=False)
        self.notify("Following the log." if self.follow else "Stopped following.")

    def action_target(self, action: str) -> tuple[str | None, str | None]:
        if action == "cancel":
            if self.run_state is not None and self.run_state not in ACTIVE_STATES:
                return self.agent, f"run {self.run_id} is {self.run_state}"
            return self.agent, None
        return super().action_target(action)

    def action_cancel(self) -> None:
        if self.refuse_if_blocked("cancel"):
            return
        dialog = ReasonDialog(
            f"Cancel run {self.run_id} ({self.model}) on {self.agent}",
            "The agent sends SIGTERM to the run's process group, then SIGKILL.",
            confirm_label="Cancel run",
        )

        def send(reason: str | None) -> None:
            if reason is not None:
                self.rigdeck.act(
                    self.agent,
                    "cancel",
                    f"run {self.run_id}",
                    f"/api/v1/runs/{self.run_id}/cancel",
                    {"reason": reason or None},
                )

        self.app.push_screen(dialog, send)
