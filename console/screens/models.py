"""Models and their versions: metrics, gate verdicts and lineage."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from console import resources
from console.format import (
    NO_VALUE,
    format_age,
    format_error_rate,
    format_number,
    live_summary,
    truncate,
)
from console.screens.base import ConsoleScreen
from console.screens.reason_dialog import ReasonDialog
from console.screens.rollback import confirm_rollback
from console.screens.runs import metrics_text, row_key, split_key
from console.widgets import ResourceTable, Row

MODEL_COLUMNS = ("AGENT", "MODEL", "STABLE", "CANARY", "LATEST", "VERSIONS", "ERR 5m")
VERSION_COLUMNS = ("VERSION", "AGE", "GATES", "METRICS", "RUN")
GATE_STATES = {
    "passed": ("✓", "green"),
    "failed": ("✕", "red"),
    "pending": ("…", "dim"),
    "overridden": ("!", "yellow"),
}
LINEAGE_KEYS = (
    "data_sha256",
    "recipe",
    "params",
    "code_revision",
    "torch",
    "cuda",
    "host",
    "region",
)


def gate_text(state: str | None) -> Text:
    symbol, style = GATE_STATES.get(state or "", ("?", ""))
    return Text(f"{symbol} {state or 'unknown'}", style=style)


def live_error_text(live: dict[str, Any] | None) -> str:
    """Return the live error rates: stable's, and a canary's after ``◇``."""
    if not live:
        return NO_VALUE
    text = format_error_rate((live.get("stable") or {}).get("error_rate"))
    if live.get("canary"):
        text += f" ◇{format_error_rate(live['canary'].get('error_rate'))}"
    return text


def version_details(
    version: dict[str, Any] | None,
    stable: int | None,
    live: dict[str, Any] | None = None,
) -> Text:
    """Return the gates with their reasons and the lineage of one version.

    ``live`` is the model's live figures; they show under the version that
    serves them.
    """
    if version is None:
        return Text("Select a version to see its gates and lineage.", style="dim")
    number = version.get("number")
    text = Text(f"v{number}", style="bold")
    if number == stable:
        text.append("  in production", style="green")
    releasable = version.get("releasable")
    if releasable is not None:
        text.append(
            f"  {'releasable' if releasable else 'not releasable'}: "
            f"{version.get('releasable_reason') or ''}",
            style="" if releasable else "red",
        )
    for role in ("stable", "canary"):
        figures = (live or {}).get(role)
        if figures and figures.get("version") == number:
            summary = live_summary(figures, live["window_seconds"])
            text.append(f"\n{role} {summary}", style="cyan")
    for gate in version.get("gates") or ():
        mark = "✓" if gate.get("passed") else "✕"
        text.append(f"\n{mark} {gate.get('gate')}: {gate.get('reason')}")
    lineage = version.get("lineage") or {}
    pairs = [
        f"{key} {_short(lineage[key])}" for key in LINEAGE_KEYS if lineage.get(key)
    ]
    pairs += [
        f"{key} {_short(value)}"
        for key, value in sorted(lineage.items())
        if key not in LINEAGE_KEYS and isinstance(value, (str, int, float))
    ]
    if pairs:
        text.append("\nlineage: " + " · ".join(pairs), style="dim")
    return text


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:
        return value[:12]
    if isinstance(value, dict):
        return ",".join(f"{k}={format_number(v)}" for k, v in sorted(value.items()))
    return truncate(str(value), 40)


class ModelsScreen(ConsoleScreen):
    """Models of every agent; the selected model's versions below.

    Enter on a version compares it with the version in production.
    """

    VIEW = "models"
    BINDINGS = [
        Binding("n", "request_release", "Request release", id="request_release"),
        Binding("b", "rollback", "Roll back", id="rollback"),
    ]

    def compose_body(self) -> ComposeResult:
        yield ResourceTable(MODEL_COLUMNS, id="models")
        yield ResourceTable(VERSION_COLUMNS, id="versions")
        yield Static(id="version-details")

    def poll_plan(self) -> dict[str, set[str]]:
        plan = {
            name: {resources.MODELS, resources.DEPLOYMENTS}
            for name in self.rigdeck.clients
        }
        for client, data in self.clients():
            for deployment in data.deployments or ():
                if deployment.get("stable_version"):
                    plan[client.name].add(resources.LIVE_PREFIX + deployment["model"])
        selected = self._selected_model()
        if selected is not None:
            # Releases tell the rollback dialog which version it returns to.
            plan[selected[0]].update(
                {resources.VERSIONS_PREFIX + selected[1], resources.RELEASES}
            )
        return plan

    def refresh_view(self, agents: set[str] | None) -> None:
        rows = []
        for client, data in self.clients():
            for model in data.models or ():
                rows.append(self._model_row(client.name, model))
        self.set_rows_of("models", rows)
        self._show_versions()
        super().refresh_view(agents)

    def _model_row(self, agent: str, model: dict[str, Any]) -> Row:
        deployment = self.rigdeck.data[agent].deployment(model["name"]) or model
        canary = deployment.get("canary_version")
        weight = deployment.get("canary_weight")
        canary_text = f"v{canary}" if canary else ""
        if canary and weight:
            canary_text += f" {weight * 100:.0f}%"
        stable = deployment.get("stable_version")
        return Row(
            row_key(agent, model["name"]),
            (
                agent,
                model["name"],
                f"v{stable}" if stable else NO_VALUE,
                canary_text,
                f"v{model['latest_version']}"
                if model.get("latest_version")
                else NO_VALUE,
                str(model.get("version_count", NO_VALUE)),
                live_error_text(self.rigdeck.data[agent].live.get(model["name"])),
            ),
        )

    def _show_versions(self) -> None:
        selected = self._selected_model()
        details = self.query_one("#version-details", Static)
        if selected is None:
            self.set_rows_of("versions", [])
            details.update(Text("Select a model to see its versions.", style="dim"))
            return
        agent, model = selected
        data = self.rigdeck.data[agent]
        now = self.rigdeck.clock()
        stable = self._stable(agent, model)
        rows = [
            self._version_row(version, stable, now)
            for version in data.versions.get(model) or ()
        ]
        self.set_rows_of("versions", rows)
        missing = self.missing_text(data, resources.VERSIONS_PREFIX + model)
        if missing:
            details.update(Text(f"versions: {missing}", style="dim"))
            return
        details.update(
            version_details(self._selected_version(), stable, data.live.get(model))
        )

    def _version_row(
        self, version: dict[str, Any], stable: int | None, now: float
    ) -> Row:
        number = version["number"]
        label = f"v{number}" + (" ★" if number == stable else "")
        created = version.get("created_at")
        return Row(
            str(number),
            (
                label,
                format_age(now - created) if created else NO_VALUE,
                gate_text(version.get("gate_state")),
                metrics_text(version.get("metrics"), 30),
                str(version.get("run_id") or NO_VALUE),
            ),
        )

    def _stable(self, agent: str, model: str) -> int | None:
        deployment = self.rigdeck.data[agent].deployment(model)
        if deployment is not None:
            return deployment.get("stable_version")
        for item in self.rigdeck.data[agent].models or ():
            if item["name"] == model:
                return item.get("stable_version")
        return None

    # Selection.

    def _selected_model(self) -> tuple[str, str] | None:
        key = self.query_one("#models", ResourceTable).selected_key
        return split_key(key) if key else None

    def _selected_version(self) -> dict[str, Any] | None:
        selected = self._selected_model()
        key = self.query_one("#versions", ResourceTable).selected_key
        if selected is None or key is None:
            return None
        for version in self.rigdeck.data[selected[0]].versions.get(selected[1]) or ():
            if str(version["number"]) == key:
                return version
        return None

    def selected_agent(self) -> str | None:
        selected = self._selected_model()
        return selected[0] if selected else None

    def selection_changed(self) -> None:
        if self.is_mounted:
            self._show_versions()
        super().selection_changed()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "models":
            self.rigdeck.poll_now()
        super().on_data_table_row_highlighted(event)

    def action_target(self, action: str) -> tuple[str | None, str | None]:
        selected = self._selected_model()
        if selected is None:
            return None, "select a model"
        agent, model = selected
        if action == "request_release":
            version = self._selected_version()
            if (
                version is None
                or self.main_table is None
                or self.main_table.id != "versions"
            ):
                return agent, "select a version in the lower table"
            if version.get("releasable") is False:
                return (
                    agent,
                    f"v{version['number']}: {version.get('releasable_reason')}",
                )
            if version["number"] == self._stable(agent, model):
                return agent, f"v{version['number']} is already in production"
            return agent, None
        if action == "rollback":
            if not self._stable(agent, model):
                return agent, f"{model} has no version in production"
            return agent, None
        return super().action_target(action)

    # Actions.

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.data_table.id == "models":
            self.set_focus(self.query_one("#versions", ResourceTable))
            return
        selected = self._selected_model()
        version = self._selected_version()
        if selected and version:
            from console.screens.compare import CompareScreen

            self.app.push_screen(
                CompareScreen(selected[0], selected[1], version["number"])
            )

    def action_request_release(self) -> None:
        if self.refuse_if_blocked("request_release"):
            return
        agent, model = self._selected_model()  # type: ignore[misc]
        version = self._selected_version()
        assert version is not None
        stable = self._stable(agent, model)
        dialog = ReasonDialog(
            f"Request a release of {model} v{version['number']} on {agent}",
            f"In production now: {f'v{stable}' if stable else 'nothing'}. "
            "Approvers must approve it; you cannot approve your own request.",
            confirm_label="Request",
            reason_required=True,
        )

        def send(reason: str | None) -> None:
            if reason is not None:
                self.rigdeck.act(
                    agent,
                    "request_release",
                    f"{model} v{version['number']}",
                    "/api/v1/releases",
                    {"model": model, "version": version["number"], "reason": reason},
                )

        self.app.push_screen(dialog, send)

    def action_rollback(self) -> None:
        if self.refuse_if_blocked("rollback"):
            return
        agent, model = self._selected_model()  # type: ignore[misc]
        confirm_rollback(self, agent, model)
