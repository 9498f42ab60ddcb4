"""The fleet: one row per agent with its state and the age of its data."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from console.client import AgentClient, AgentState

STATE_LABELS = {
    AgentState.CONNECTING: "… connecting",
    AgentState.OK: "● ok",
    AgentState.SLOW: "◐ slow",
    AgentState.UNREACHABLE: "✕ unreachable",
}
COLUMNS = ("agent", "state", "age", "cpu", "memory", "gpus", "alerts")


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.0f}%"


def fleet_row(client: AgentClient, now: float) -> tuple[str, ...]:
    status = client.status
    host = status.data.get("host") or {}
    cpu = (host.get("cpu") or {}).get("utilization_ratio")
    memory = host.get("memory") or {}
    memory_ratio = None
    if memory.get("total_bytes"):
        memory_ratio = memory.get("used_bytes", 0) / memory["total_bytes"]
    gpu = host.get("gpu") or {}
    if gpu.get("status") == "ok":
        gpus = str(len(gpu.get("gpus", [])))
    else:
        gpus = f"n/a ({gpu.get('reason', 'unknown')})" if gpu else "-"
    alerts = status.data.get("open_alerts")
    return (
        client.name,
        STATE_LABELS[status.state],
        format_age(status.age_seconds(now)),
        _percent(cpu),
        _percent(memory_ratio),
        gpus,
        "-" if alerts is None else str(alerts),
    )


class FleetScreen(Screen):
    """Every agent at a glance; the default screen."""

    BINDINGS = [
        Binding("r", "app.refresh_now", "Refresh", tooltip="Poll every agent now"),
        Binding("q", "app.quit", "Quit", tooltip="Leave the console"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="fleet", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.refresh_rows()

    def refresh_rows(self) -> None:
        table = self.query_one(DataTable)
        now = time.time()
        for client in self.app.clients:
            row = fleet_row(client, now)
            if client.name in table.rows:
                for column, value in zip(COLUMNS, row, strict=True):
                    table.update_cell(client.name, column, value)
            else:
                table.add_row(*row, key=client.name)
