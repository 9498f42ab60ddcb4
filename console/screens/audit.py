"""The audit log of every agent, newest first; ``v`` verifies the hash chains."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from console import resources
from console.errors import AgentRequestError
from console.format import NO_VALUE, format_time, truncate
from console.messages import AuditVerified
from console.screens.base import ConsoleScreen
from console.screens.runs import row_key, split_key
from console.widgets import ResourceTable, Row

COLUMNS = ("AGENT", "ID", "TIME", "ACTOR", "ACTION", "TARGET", "REASON")


def entry_details(entry: dict[str, Any]) -> Text:
    text = Text()
    for label, key in (("before", "before"), ("after", "after")):
        value = entry.get(key)
        text.append(f"{label}: ", style="bold")
        text.append(
            json.dumps(value, sort_keys=True) if value is not None else NO_VALUE
        )
        text.append("\n")
    text.append(
        f"hash {entry.get('hash', '')[:16]}  "
        f"previous {entry.get('prev_hash', '')[:16]}",
        style="dim",
    )
    return text


class AuditScreen(ConsoleScreen):
    """Entries arrive incrementally: each poll requests the ids after the last one."""

    VIEW = "audit"
    BINDINGS = [
        Binding("v", "verify", "Verify chain", id="verify"),
    ]

    def __init__(self, filter_text: str = "") -> None:
        super().__init__(filter_text)
        self.verdicts: dict[str, str] = {}

    def compose_body(self) -> ComposeResult:
        yield ResourceTable(COLUMNS, id="audit")

    def poll_plan(self) -> dict[str, set[str]]:
        return {name: {resources.AUDIT} for name in self.rigdeck.clients}

    def refresh_view(self, agents: set[str] | None) -> None:
        entries = [
            (client.name, entry)
            for client, data in self.clients()
            for entry in data.audit or ()
        ]
        entries.sort(
            key=lambda pair: (pair[1].get("ts") or 0.0, pair[1]["id"]), reverse=True
        )
        self.set_rows_of("audit", [self._row(agent, e) for agent, e in entries])
        super().refresh_view(agents)

    def _row(self, agent: str, entry: dict[str, Any]) -> Row:
        return Row(
            row_key(agent, entry["id"]),
            (
                agent,
                str(entry["id"]),
                format_time(entry.get("ts")),
                truncate(entry.get("actor") or NO_VALUE, 14),
                entry.get("action") or NO_VALUE,
                truncate(entry.get("target") or NO_VALUE, 20),
                truncate(entry.get("reason") or "", 30),
            ),
        )

    def selected_agent(self) -> str | None:
        key = self.selected("audit")
        return split_key(key)[0] if key else None

    def action_verify(self) -> None:
        for name in self.rigdeck.clients:
            self.verdicts[name] = "verifying…"
            self._verify(name)
        self.update_hint()

    @work(group="audit-verify", exit_on_error=False)
    async def _verify(self, agent: str) -> None:
        try:
            result = await self.rigdeck.clients[agent].get("/api/v1/audit/verify")
        except AgentRequestError as error:
            self.post_message(AuditVerified(agent, None, error.message))
            return
        self.post_message(AuditVerified(agent, result, None))

    def on_audit_verified(self, message: AuditVerified) -> None:
        if message.result is None:
            self.verdicts[message.agent] = f"✕ not verified: {message.error}"
            severity = "error"
        elif message.result.get("ok"):
            self.verdicts[message.agent] = (
                f"✓ {message.result.get('checked')} entries verify"
            )
            severity = "information"
        else:
            self.verdicts[message.agent] = (
                f"✕ BROKEN at entry {message.result.get('first_bad_id')}: "
                f"{message.result.get('message')}"
            )
            severity = "error"
        self.notify(
            f"{message.agent}: {self.verdicts[message.agent]}", severity=severity
        )
        self.update_hint()

    def status_text(self) -> str:
        verdicts = " · ".join(
            f"{agent} {text}" for agent, text in sorted(self.verdicts.items())
        )
        base = super().status_text()
        return "   ".join(part for part in (verdicts, base) if part)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = self.selected("audit")
        if key is None:
            return
        agent, entry_id = split_key(key)
        for entry in self.rigdeck.data[agent].audit or ():
            if str(entry["id"]) == entry_id:
                self.app.push_screen(AuditEntryScreen(agent, entry))
                return


class AuditEntryScreen(ModalScreen[None]):
    """One entry's before and after; Escape or Enter closes it."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("enter", "dismiss", "Close", show=False),
    ]

    DEFAULT_CSS = """
    AuditEntryScreen {
        align: center middle;
    }
    AuditEntryScreen > Vertical {
        width: 90%;
        height: auto;
        max-height: 90%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, agent: str, entry: dict[str, Any]) -> None:
        super().__init__()
        self.agent = agent
        self.entry = entry

    def compose(self) -> ComposeResult:
        entry = self.entry
        with Vertical():
            yield Label(
                f"{self.agent} audit entry {entry['id']}: "
                f"{entry.get('action')} {entry.get('target')} by {entry.get('actor')}"
            )
            yield Static(entry_details(entry))
