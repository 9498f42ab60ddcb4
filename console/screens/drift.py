"""Drift monitors per model with their state and trend, and drift events."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable

from console import resources
from console.format import (
    NO_VALUE,
    format_age,
    format_number,
    format_time,
    sparkline,
    truncate,
)
from console.resources import AgentData
from console.screens.base import ConsoleScreen
from console.screens.runs import row_key
from console.widgets import ResourceTable, Row

MONITOR_COLUMNS = (
    "AGENT",
    "MODEL",
    "SIGNAL",
    "DETECTOR",
    "STATE",
    "TREND",
    "EVENTS",
    "LAST",
)
EVENT_COLUMNS = (
    "AGENT",
    "TIME",
    "MODEL",
    "VER",
    "SIGNAL",
    "DETECTOR",
    "SAMPLE",
    "STATS",
)
# The agent's monitor statuses (agent.drift.monitor.MonitorStatus).
MONITOR_STATES = {
    "warming_up": ("…", "dim"),
    "watching": ("●", "green"),
    "drifting": ("▲", "bold red"),
}
TREND_WIDTH = 12
SIGNAL_WIDTH = 22
# Without a history from the agent, the trend is the count of drift events
# in each of TREND_WIDTH buckets over this window.
TREND_WINDOW_SECONDS = 86400.0


def monitor_state(state: str | None) -> Text:
    symbol, style = MONITOR_STATES.get(state or "", ("?", ""))
    return Text(f"{symbol} {state or 'unknown'}", style=style)


def monitor_events(data: AgentData, monitor: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the drift events of ``monitor``: same model, role, signal and detector."""
    return [
        event
        for event in data.drift_events or ()
        if event.get("model") == monitor.get("model")
        and event.get("signal") == monitor.get("signal")
        and event.get("detector") == monitor.get("detector")
        and event.get("role", "stable") == monitor.get("role", "stable")
    ]


def trend(monitor: dict[str, Any], events: list[dict[str, Any]], now: float) -> str:
    """Return the monitor's recent values as a sparkline, else its events per bucket."""
    recent = monitor.get("recent_values")
    if recent:
        values = [v if isinstance(v, (int, float)) else None for v in recent]
        return sparkline(values, TREND_WIDTH)
    bucket_seconds = TREND_WINDOW_SECONDS / TREND_WIDTH
    counts = [0.0] * TREND_WIDTH
    for event in events:
        age = now - event.get("ts", now)
        if 0 <= age < TREND_WINDOW_SECONDS:
            counts[TREND_WIDTH - 1 - int(age // bucket_seconds)] += 1
    return sparkline(counts, TREND_WIDTH, 0.0, max(1.0, max(counts)))


def _version_text(event: dict[str, Any]) -> str:
    if event.get("version") is None:
        return NO_VALUE
    canary = " ◇" if event.get("role") == "canary" else ""
    return f"v{event['version']}{canary}"


def stats_text(stats: dict[str, Any] | None) -> str:
    """Return an event's statistics: the mean before and after the change, and z.

    Statistics of another shape show as ``key value`` pairs, nested keys
    dotted.
    """
    if not stats:
        return ""
    before = stats.get("before") if isinstance(stats.get("before"), dict) else {}
    after = stats.get("after") if isinstance(stats.get("after"), dict) else {}
    if "mean" in before and "mean" in after:
        text = f"mean {format_number(before['mean'])} → {format_number(after['mean'])}"
        z = (stats.get("transformed") or {}).get("z")
        if z is not None:
            text += f" z {format_number(z)}"
        return truncate(text, 30)
    return truncate(" ".join(f"{k} {format_number(v)}" for k, v in _flat(stats)), 30)


def _flat(stats: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for key, value in sorted(stats.items()):
        if isinstance(value, dict):
            pairs.extend(_flat(value, f"{prefix}{key}."))
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


class DriftScreen(ConsoleScreen):
    """Monitors (top) and drift events (bottom, newest first) of every agent.

    Enter on a monitor filters the events to its signal.
    """

    VIEW = "drift"

    def compose_body(self) -> ComposeResult:
        yield ResourceTable(MONITOR_COLUMNS, id="monitors")
        yield ResourceTable(EVENT_COLUMNS, id="events")

    def poll_plan(self) -> dict[str, set[str]]:
        return {
            name: {resources.MONITORS, resources.DRIFT_EVENTS}
            for name in self.rigdeck.clients
        }

    def refresh_view(self, agents: set[str] | None) -> None:
        now = self.rigdeck.clock()
        monitors, events = [], []
        for client, data in self.clients():
            for monitor in data.monitors or ():
                monitors.append(self._monitor_row(client.name, data, monitor, now))
            for event in data.drift_events or ():
                events.append(
                    (event.get("ts") or 0.0, self._event_row(client.name, event))
                )
        events.sort(key=lambda pair: pair[0], reverse=True)
        self.set_rows_of("monitors", monitors)
        self.set_rows_of("events", [row for _ts, row in events])
        super().refresh_view(agents)

    def _monitor_row(
        self, agent: str, data: AgentData, monitor: dict[str, Any], now: float
    ) -> Row:
        events = monitor_events(data, monitor)
        last = max((event.get("ts") or 0.0 for event in events), default=None)
        # Drift events, not detections: a detection the z-test does not
        # confirm raises no event, so counting those would disagree with LAST.
        count = len(events)
        model = monitor.get("model") or NO_VALUE
        if monitor.get("role") == "canary":
            model += " ◇"
        return Row(
            row_key(agent, monitor["id"]),
            (
                agent,
                model,
                # Feature names can be long; Enter filters the events by it.
                truncate(monitor.get("signal") or NO_VALUE, SIGNAL_WIDTH),
                monitor.get("detector") or NO_VALUE,
                monitor_state(monitor.get("status")),
                trend(monitor, events, now),
                str(count),
                format_age(now - last) if last else NO_VALUE,
            ),
        )

    def _event_row(self, agent: str, event: dict[str, Any]) -> Row:
        return Row(
            row_key(agent, event["id"]),
            (
                agent,
                format_time(event.get("ts")),
                event.get("model") or NO_VALUE,
                _version_text(event),
                event.get("signal") or NO_VALUE,
                event.get("detector") or NO_VALUE,
                str(event.get("sample_index", NO_VALUE)),
                stats_text(event.get("stats")),
            ),
        )

    def selected_agent(self) -> str | None:
        key = self.main_table.selected_key if self.main_table else None
        return key.partition("\t")[0] if key else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.data_table.id != "monitors":
            return
        table = self.query_one("#monitors", ResourceTable)
        key = table.selected_key
        if key is None:
            return
        agent, _, monitor_id = key.partition("\t")
        monitor = next(
            (
                m
                for m in self.rigdeck.data[agent].monitors or ()
                if str(m.get("id")) == monitor_id
            ),
            None,
        )
        if monitor is None:
            return
        # The SIGNAL cell may be cut to its column; filter by the whole name.
        signal = monitor.get("signal") or ""
        model = monitor.get("model") or ""
        events = self.query_one("#events", ResourceTable)
        events.filter_text = f"{model} {signal}"
        self.set_focus(events)
        self.update_hint()

    def status_text(self) -> str:
        missing = {
            reason
            for _client, data in self.clients()
            for reason in (data.missing.get(resources.MONITORS),)
            if reason
        }
        base = super().status_text()
        if missing:
            return f"drift: {'; '.join(sorted(missing))}" + (
                f"   {base}" if base else ""
            )
        return base
