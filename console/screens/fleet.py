"""The fleet: one row per agent with its state and the age of its data."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from console import resources
from console.client import AgentClient, AgentState
from console.format import (
    NO_VALUE,
    bar,
    format_age,
    format_percent,
    load_style,
    ratio_of,
)
from console.resources import AgentData
from console.screens.base import ConsoleScreen
from console.widgets import ResourceTable, Row

STATE_LABELS = {
    AgentState.CONNECTING: ("…", "connecting", "dim"),
    AgentState.OK: ("●", "ok", "green"),
    AgentState.SLOW: ("◐", "slow", "yellow"),
    AgentState.UNREACHABLE: ("✕", "unreachable", "red"),
    AgentState.UNAUTHORIZED: ("⊘", "token rejected", "red"),
}
COLUMNS = ("AGENT", "STATE", "GPU util mem", "CPU MEM", "RUNS", "MODELS", "ALERTS")
MODELS_WIDTH = 13
# Short labels, in the GPU column's width, of the reasons a host has no GPU
# figures (agent.telemetry._nvml). The host view shows the agent's message.
GPU_REASONS = {
    "nvml_not_found": ("no NVML", "dim"),
    "driver_not_loaded": ("no driver", "yellow"),
    "driver_mismatch": ("reboot needed", "bold red"),
    "no_permission": ("NVML denied", "red"),
    "nvml_error": ("NVML error", "red"),
}
# Fixed widths with one blank cell of gap included (the table has no cell
# padding), so that the fleet fits 80 columns with agent names of up to ten
# characters. The agent's name is measured once at mount.
COLUMN_WIDTHS = (None, 20, 14, 9, 5, MODELS_WIDTH + 1, 6)
NAME_WIDTH_MAX = 24
SCROLLBAR_WIDTH = 2
# Data younger than this shows as "<5s": ages of healthy agents do not tick
# on screen every second, so their rows are not redrawn for nothing.
FRESH_SECONDS = 5.0
# Rows in view are polled every tick. Rows scrolled or filtered out of view
# get their host (state, CPU, GPUs) and their runs, deployments and alerts
# at these intervals. A row that comes into view is polled at the next tick.
OFFSCREEN_HOST_SECONDS = 6.0
OFFSCREEN_LISTS_SECONDS = 30.0


def state_cell(client: AgentClient) -> Text:
    symbol, word, style = STATE_LABELS[client.status.state]
    text = Text(f"{symbol} {word}", style=style)
    if client.status.state is AgentState.CONNECTING:
        return text
    age = client.age_seconds()
    fresh = age is not None and age < FRESH_SECONDS
    text.append(" <5s" if fresh else f" {format_age(age)}", style="dim")
    return text


def gpu_cell(host: dict[str, Any] | None) -> Text:
    """Return ``N ▕util▏▕mem▏``: GPU count and mean utilisation and memory bars."""
    gpu = (host or {}).get("gpu")
    if not gpu:
        return Text(NO_VALUE)
    if gpu.get("status") != "ok":
        reason = gpu.get("reason") or gpu.get("status") or ""
        label, style = GPU_REASONS.get(reason, (reason.replace("_", " "), "dim"))
        return Text(label, style=style)
    gpus = gpu.get("gpus") or []
    if not gpus:
        return Text("0", style="dim")
    healthy = [g for g in gpus if g.get("state") == "ok"]
    count = (
        str(len(gpus)) if len(healthy) == len(gpus) else f"{len(healthy)}/{len(gpus)}"
    )
    utilization = _mean(g.get("utilization_ratio") for g in healthy)
    memory = ratio_of(
        _sum(g.get("memory_used_bytes") for g in healthy),
        _sum(g.get("memory_total_bytes") for g in healthy),
    )
    text = Text(count.ljust(3), style="" if len(healthy) == len(gpus) else "red")
    text.append("▕", style="dim")
    text.append(bar(utilization, 3), style=load_style(utilization))
    text.append("▏▕", style="dim")
    text.append(bar(memory, 3), style=load_style(memory))
    text.append("▏", style="dim")
    return text


def models_cell(data: AgentData) -> str:
    """Return each model's stable version, canary and releases awaiting approval.

    For example ``shuttle 3 ◇4``, or ``shuttle 3 !4`` while a release of
    version 4 waits for approval.
    """
    if resources.DEPLOYMENTS in data.missing:
        return "n/a"
    if data.deployments is None:
        return NO_VALUE
    pending: dict[str, list[int]] = {}
    for release in data.pending_releases or ():
        pending.setdefault(release.get("model") or "", []).append(release["version"])
    models = {item.get("model") or "": item for item in data.deployments}
    parts = []
    for model in sorted({*models, *pending}):
        item = models.get(model, {})
        text = f"{model} {item.get('stable_version') or NO_VALUE}"
        if item.get("canary_version"):
            text += f" ◇{item['canary_version']}"
        text += "".join(f" !{version}" for version in sorted(pending.get(model, ())))
        parts.append(text)
    return ", ".join(parts) if parts else "none"


def pending_count(data: AgentData) -> int:
    return len(data.pending_releases or ())


def alerts_cell(data: AgentData) -> Text:
    if resources.OPEN_ALERTS in data.missing:
        return Text("n/a", style="dim")
    if data.open_alerts is None:
        return Text(NO_VALUE)
    count = f"{len(data.open_alerts)}{'+' if data.open_alerts_more else ''}"
    critical = any(a.get("severity") == "critical" for a in data.open_alerts)
    if critical:
        return Text(f"{count} !", style="bold red")
    return Text(count, style="yellow" if data.open_alerts else "")


def runs_cell(data: AgentData) -> str:
    if resources.ACTIVE_RUNS in data.missing:
        return "n/a"
    return NO_VALUE if data.active_runs is None else str(len(data.active_runs))


def cpu_memory_cell(host: dict[str, Any]) -> str:
    """Return CPU and memory use as ``37% 38%``."""
    memory = host.get("memory") or {}
    cpu = format_percent((host.get("cpu") or {}).get("utilization_ratio"))
    used = format_percent(ratio_of(memory.get("used_bytes"), memory.get("total_bytes")))
    return f"{cpu:>3} {used:>3}"


def fleet_row(client: AgentClient, data: AgentData) -> Row:
    return Row(
        client.name,
        (
            client.name,
            state_cell(client),
            gpu_cell(data.host),
            cpu_memory_cell(data.host or {}),
            runs_cell(data),
            models_cell(data),
            alerts_cell(data),
        ),
    )


def _age(data: AgentData, kind: str, now: float) -> float:
    fetched = data.fetched_at.get(kind)
    return float("inf") if fetched is None else now - fetched


def _mean(values) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _sum(values) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


class FleetScreen(ConsoleScreen):
    """Every agent at a glance; the default screen. Enter opens its host view."""

    VIEW = "fleet"
    # A full redraw of a large fleet table costs tens of milliseconds, and
    # the polls of one tick land over a few hundred: draw them together.
    REDRAW_DELAY_SECONDS = 0.5
    BINDINGS = [
        Binding("enter", "open_host", "Host", id="open"),
    ]

    def compose_body(self) -> ComposeResult:
        name_width = max([len("AGENT"), *(len(name) for name in self.rigdeck.clients)])
        widths = (min(name_width, NAME_WIDTH_MAX) + 1, *COLUMN_WIDTHS[1:])
        yield ResourceTable(COLUMNS, widths=widths, cell_padding=0, id="fleet")

    @property
    def table(self) -> ResourceTable:
        return self.query_one("#fleet", ResourceTable)

    def poll_plan(self) -> dict[str, set[str]]:
        visible = set(self._visible_agents())
        now = self.rigdeck.clock()
        plan = {}
        for client, data in self.clients():
            if client.name in visible:
                plan[client.name] = {resources.HOST, *resources.FLEET_KINDS}
                continue
            kinds = set()
            if _age(data, resources.HOST, now) >= OFFSCREEN_HOST_SECONDS:
                kinds.add(resources.HOST)
            for kind in resources.FLEET_KINDS:
                if _age(data, kind, now) >= OFFSCREEN_LISTS_SECONDS:
                    kinds.add(kind)
            if kinds:
                plan[client.name] = kinds
        return plan

    def _visible_agents(self) -> list[str]:
        table = self.table
        first = int(table.scroll_y)
        height = max(1, table.size.height - 1)
        return table.shown_keys[first : first + height]

    def refresh_view(self, agents: set[str] | None) -> None:
        rows = [fleet_row(client, data) for client, data in self.clients()]
        self.table.set_rows(rows)
        super().refresh_view(agents)

    def selected_agent(self) -> str | None:
        return self.table.selected_key

    def on_resize(self) -> None:
        # The models column takes the width the fixed columns leave over.
        table = self.table
        fixed = sum(w or 0 for w in table.column_widths) - table.column_widths[5]
        spare = self.size.width - fixed - SCROLLBAR_WIDTH
        table.set_column_width("MODELS", max(MODELS_WIDTH + 1, spare))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_host()

    def action_open_host(self) -> None:
        agent = self.selected_agent()
        if agent is not None:
            self.rigdeck.show_view("host", agent)

    def status_text(self) -> str:
        """Return the count of agents per state, and why the selected one is not ok."""
        counts: dict[str, int] = {}
        for client, _data in self.clients():
            state = client.status.state.value
            counts[state] = counts.get(state, 0) + 1
        parts = [
            " · ".join(f"{count} {state}" for state, count in sorted(counts.items()))
        ]
        pending = sum(pending_count(data) for _client, data in self.clients())
        if pending:
            noun = "release waits" if pending == 1 else "releases wait"
            parts.append(f"! {pending} {noun} for approval: type :releases")
        selected = self.selected_agent()
        error = self.rigdeck.clients[selected].status.error if selected else None
        if error:
            parts.append(f"{selected}: {error}")
        parts.append(super().status_text())
        return "   ".join(part for part in parts if part)
