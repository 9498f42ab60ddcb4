"""One version side by side with the version in production."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult

from console import resources
from console.format import NO_VALUE, format_number, format_time, truncate
from console.screens.base import ConsoleScreen
from console.screens.models import LINEAGE_KEYS, gate_text
from console.widgets import ResourceTable, Row

COLUMNS = ("", "THIS", "PRODUCTION", "CHANGE")
CELL_WIDTH = 22


def compare_rows(
    version: dict[str, Any] | None, stable: dict[str, Any] | None
) -> list[Row]:
    """Return metric, gate and lineage rows of two versions; either may be None."""
    this, other = version or {}, stable or {}
    production_gates = gate_text(other.get("gate_state")) if stable else NO_VALUE
    rows = [
        Row("version", ("version", _number(this), _number(other), "")),
        Row(
            "created",
            (
                "created",
                format_time(this.get("created_at")),
                format_time(other.get("created_at")),
                "",
            ),
        ),
        Row(
            "gates", ("gates", gate_text(this.get("gate_state")), production_gates, "")
        ),
    ]
    rows += _metric_rows(this.get("metrics") or {}, other.get("metrics") or {})
    rows += _gate_rows(this.get("gates") or (), other.get("gates") or ())
    rows += _lineage_rows(this.get("lineage") or {}, other.get("lineage") or {})
    return rows


def _metric_rows(this: dict[str, Any], other: dict[str, Any]) -> list[Row]:
    rows = []
    for name in sorted(set(this) | set(other)):
        left, right = this.get(name), other.get(name)
        cells = (name, format_number(left), format_number(right), _change(left, right))
        rows.append(Row(f"metric:{name}", cells))
    return rows


def _gate_rows(this: Any, other: Any) -> list[Row]:
    by_name_this = {gate["gate"]: gate for gate in this}
    by_name_other = {gate["gate"]: gate for gate in other}
    rows = []
    for name in sorted(set(by_name_this) | set(by_name_other)):
        left, right = by_name_this.get(name), by_name_other.get(name)
        rows.append(
            Row(f"gate:{name}", (f"gate {name}", _gate(left), _gate(right), ""))
        )
    return rows


def _lineage_rows(this: dict[str, Any], other: dict[str, Any]) -> list[Row]:
    rows = []
    for key in LINEAGE_KEYS:
        left, right = this.get(key), other.get(key)
        if left is None and right is None:
            continue
        change = "" if left == right else "differs"
        rows.append(Row(f"lineage:{key}", (key, _value(left), _value(right), change)))
    return rows


def _number(version: dict[str, Any]) -> str:
    return f"v{version['number']}" if version.get("number") else NO_VALUE


def _change(left: Any, right: Any) -> Text:
    if not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)
    ):
        return Text("")
    delta = left - right
    if delta == 0:
        return Text("=")
    return Text(f"{'+' if delta > 0 else ''}{format_number(delta)}")


def _gate(gate: dict[str, Any] | None) -> Text:
    if gate is None:
        return Text(NO_VALUE)
    mark = "✓" if gate.get("passed") else "✕"
    return Text(
        truncate(f"{mark} {gate.get('reason') or ''}", CELL_WIDTH),
        style="green" if gate.get("passed") else "red",
    )


def _value(value: Any) -> str:
    if value is None:
        return NO_VALUE
    if isinstance(value, dict):
        value = ",".join(f"{k}={format_number(v)}" for k, v in sorted(value.items()))
    text = str(value)
    return text[:12] if len(text) == 64 else truncate(text, CELL_WIDTH)


class CompareScreen(ConsoleScreen):
    """Metrics (with the change), gates and lineage of a version and production's."""

    VIEW = "compare"

    def __init__(self, agent: str, model: str, number: int) -> None:
        super().__init__()
        self.agent = agent
        self.model = model
        self.number = number

    def describe(self) -> str:
        return f"compare {self.model} v{self.number} with production on {self.agent}"

    def compose_body(self) -> ComposeResult:
        yield ResourceTable(COLUMNS, id="compare")

    def poll_plan(self) -> dict[str, set[str]]:
        return {
            self.agent: {resources.VERSIONS_PREFIX + self.model, resources.DEPLOYMENTS}
        }

    def selected_agent(self) -> str | None:
        return self.agent

    def refresh_view(self, agents: set[str] | None) -> None:
        data = self.rigdeck.data[self.agent]
        versions = {v["number"]: v for v in data.versions.get(self.model) or ()}
        deployment = data.deployment(self.model) or {}
        stable_number = deployment.get("stable_version")
        self.query_one("#compare", ResourceTable).set_rows(
            compare_rows(versions.get(self.number), versions.get(stable_number))
        )
        super().refresh_view(agents)
