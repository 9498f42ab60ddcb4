"""Alerts of every agent, newest first; acknowledge with ``k``."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from console import resources
from console.format import NO_VALUE, format_age, truncate
from console.screens.base import ConsoleScreen
from console.screens.reason_dialog import ReasonDialog
from console.screens.runs import row_key, split_key
from console.widgets import ResourceTable, Row

COLUMNS = ("AGENT", "ID", "SEVERITY", "AGE", "ACK", "KIND", "SOURCE", "MESSAGE")
SEVERITIES = {
    "critical": ("!!", "bold red"),
    "warning": ("!", "yellow"),
    "info": ("i", "dim"),
}


def severity_text(severity: str | None) -> Text:
    symbol, style = SEVERITIES.get(severity or "", ("?", ""))
    return Text(f"{symbol} {severity or 'unknown'}", style=style)


def alert_details(agent: str, alert: dict[str, Any]) -> Text:
    """Return the selected alert: its whole message, source and acknowledgement."""
    text = Text(f"alert {alert['id']} on {agent} · {alert.get('kind') or NO_VALUE}")
    text.append(f" · {alert.get('source') or NO_VALUE}\n", style="dim")
    text.append(alert.get("message") or "")
    if alert.get("acknowledged_by"):
        text.append(f"\nacknowledged by {alert['acknowledged_by']}", style="dim")
    return text


class AlertsScreen(ConsoleScreen):
    """Open alerts by default; ``o`` shows acknowledged ones too."""

    VIEW = "alerts"
    BINDINGS = [
        Binding("k", "acknowledge", "Acknowledge", id="acknowledge"),
        Binding("o", "toggle_open", "Open/all", id="toggle-open"),
    ]

    def __init__(self, filter_text: str = "") -> None:
        super().__init__(filter_text)
        self.open_only = True

    def compose_body(self) -> ComposeResult:
        yield ResourceTable(COLUMNS, id="alerts")
        # The whole message: the table cuts it to its column.
        yield Static(id="alert-details")

    def poll_plan(self) -> dict[str, set[str]]:
        return {name: {resources.ALERTS} for name in self.rigdeck.clients}

    def refresh_view(self, agents: set[str] | None) -> None:
        now = self.rigdeck.clock()
        alerts = [
            (client.name, alert)
            for client, data in self.clients()
            for alert in data.alerts or ()
            if not (self.open_only and alert.get("acknowledged_at"))
        ]
        alerts.sort(key=lambda pair: pair[1].get("created_at") or 0.0, reverse=True)
        self.set_rows_of("alerts", [self._row(agent, a, now) for agent, a in alerts])
        self._show_details()
        super().refresh_view(agents)

    def _show_details(self) -> None:
        selected = self._selected()
        self.query_one("#alert-details", Static).update(
            alert_details(*selected) if selected else Text("")
        )

    def selection_changed(self) -> None:
        if self.is_mounted:
            self._show_details()
        super().selection_changed()

    def _row(self, agent: str, alert: dict[str, Any], now: float) -> Row:
        created = alert.get("created_at")
        acknowledged = alert.get("acknowledged_by")
        return Row(
            row_key(agent, alert["id"]),
            (
                agent,
                str(alert["id"]),
                severity_text(alert.get("severity")),
                format_age(now - created) if created else NO_VALUE,
                f"✓ {acknowledged}" if acknowledged else "open",
                alert.get("kind") or NO_VALUE,
                truncate(alert.get("source") or NO_VALUE, 16),
                truncate(alert.get("message") or "", 60),
            ),
        )

    def describe(self) -> str:
        return super().describe() + (" · open only" if self.open_only else " · all")

    def _selected(self) -> tuple[str, dict[str, Any]] | None:
        key = self.selected("alerts")
        if key is None:
            return None
        agent, alert_id = split_key(key)
        for alert in self.rigdeck.data[agent].alerts or ():
            if str(alert["id"]) == alert_id:
                return agent, alert
        return None

    def selected_agent(self) -> str | None:
        selected = self._selected()
        return selected[0] if selected else None

    def action_target(self, action: str) -> tuple[str | None, str | None]:
        if action != "acknowledge":
            return super().action_target(action)
        selected = self._selected()
        if selected is None:
            return None, "select an alert"
        agent, alert = selected
        if alert.get("acknowledged_at"):
            return agent, f"alert {alert['id']} is already acknowledged"
        return agent, None

    def action_toggle_open(self) -> None:
        self.open_only = not self.open_only
        self.sub_title = self.describe()
        self.refresh_view(None)

    def action_acknowledge(self) -> None:
        if self.refuse_if_blocked("acknowledge"):
            return
        agent, alert = self._selected()  # type: ignore[misc]
        dialog = ReasonDialog(
            f"Acknowledge alert {alert['id']} on {agent}",
            Text(alert.get("message") or ""),
            confirm_label="Acknowledge",
        )

        def send(reason: str | None) -> None:
            if reason is not None:
                self.rigdeck.act(
                    agent,
                    "acknowledge",
                    f"alert {alert['id']}",
                    f"/api/v1/alerts/{alert['id']}/ack",
                    {"reason": reason or None},
                )

        self.app.push_screen(dialog, send)
