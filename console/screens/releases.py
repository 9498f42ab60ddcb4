"""Releases of every agent: pending approvals first, then canaries, then the rest."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from console import resources
from console.format import (
    NO_VALUE,
    format_age,
    format_error_rate,
    format_number,
    format_percent,
    live_summary,
    truncate,
)
from console.screens.base import ConsoleScreen
from console.screens.reason_dialog import ReasonDialog
from console.screens.rollback import confirm_rollback
from console.screens.runs import row_key, split_key
from console.widgets import ResourceTable, Row

COLUMNS = ("AGENT", "ID", "MODEL", "VER", "STATE", "OK", "BY", "AGE", "REASON")
RELEASE_STATES = {
    "pending": ("!", "bold yellow"),
    "approved": ("✓", "green"),
    "rejected": ("✕", "red"),
    "canary": ("◇", "bold cyan"),
    "promoted": ("★", "green"),
    "aborted": ("⊘", "red"),
    "rolled_back": ("↩", "yellow"),
}
# Pending approvals first, then live canaries, then approved releases about
# to start their canary; finished releases last, newest first.
STATE_ORDER = {"pending": 0, "canary": 1, "approved": 2}
# Figures of a canary's verdict, in display order, with their formatting; the
# agent judges a canary on these (store.predictions.version_stats).
CANARY_FIGURES = (
    ("requests", "requests", format_number),
    ("server_errors", "server errors", format_number),
    ("nonfinite_rows", "non-finite rows", format_number),
    ("error_rate", "error rate", format_error_rate),
    ("latency_p95_seconds", "latency p95", lambda v: _milliseconds(v)),
)
# Shown only when either side is above zero, to fit 80x24.
RARE_FIGURES = ("nonfinite_rows",)
# Each action and the release states it applies to. The agent requires a
# reason for every one of them.
ACTION_STATES = {
    "approve": ("pending",),
    "reject": ("pending",),
    "promote": ("canary",),
    "abort": ("canary", "approved"),
}


def _milliseconds(seconds: float | None) -> str:
    return NO_VALUE if seconds is None else f"{seconds * 1000:.0f}ms"


def state_text(state: str | None, live: bool = False) -> Text:
    """Return a release's state; ``live`` marks the promoted one serving now."""
    if live:
        return Text("★ live", style="bold green")
    if state == "promoted":
        # Promoted once, but a later release or a rollback replaced it.
        return Text("○ superseded", style="dim green")
    symbol, style = RELEASE_STATES.get(state or "", ("?", ""))
    return Text(f"{symbol} {state or 'unknown'}", style=style)


def live_release_ids(data: Any) -> set[int]:
    """Return the ids of the releases whose version each model serves as stable.

    That is the newest promoted release of each model whose version is the
    deployment's stable version.
    """
    live: set[int] = set()
    seen: set[str] = set()
    promoted = [r for r in data.releases or () if r.get("state") == "promoted"]
    for release in sorted(promoted, key=lambda r: -(r.get("created_at") or 0.0)):
        model = release.get("model") or ""
        deployment = data.deployment(model)
        if model in seen or deployment is None:
            continue
        if deployment.get("stable_version") == release.get("version"):
            live.add(release["id"])
            seen.add(model)
    return live


def approvals_of(release: dict[str, Any]) -> list[dict[str, Any]]:
    return list(release.get("approvals") or ())


def approvals_text(release: dict[str, Any]) -> str:
    approved = sum(1 for a in approvals_of(release) if a.get("decision") == "approve")
    return f"{approved}/{release.get('approvals_required') or 1}"


def sort_key(release: dict[str, Any]) -> tuple:
    order = STATE_ORDER.get(release.get("state") or "", 3)
    # Oldest first among pending ones (the longest waiting), newest first after.
    created = release.get("created_at") or 0.0
    return (order, created if order == 0 else -created)


def canary_table(release: dict[str, Any], stable_version: int | None) -> Table | None:
    """Return the live stable-versus-canary figures of a canary release, if known."""
    verdict = release.get("verdict") or {}
    stable = verdict.get("stable") or {}
    canary = verdict.get("canary") or {}
    if not stable and not canary:
        return None
    table = Table(box=None, padding=(0, 2, 0, 0))
    table.add_column("")
    table.add_column(f"stable v{stable_version or NO_VALUE}", justify="right")
    table.add_column(f"canary v{release.get('version')}", justify="right")
    for key, label, show in CANARY_FIGURES:
        values = (stable.get(key), canary.get(key))
        if key in RARE_FIGURES and not any(values):
            continue
        if key in stable or key in canary:
            table.add_row(label, *(show(value) for value in values))
    return table


def verdict_text(release: dict[str, Any]) -> Text:
    """Return the canary verdict: its summary and each check that was made."""
    verdict = release.get("verdict") or {}
    text = Text()
    if verdict.get("summary"):
        text.append(verdict["summary"], style="bold" if verdict.get("decided") else "")
    decided_at, measured_at = verdict.get("decided_at"), verdict.get("measured_at")
    if decided_at and measured_at and measured_at > decided_at:
        # The agent keeps a decided verdict and goes on measuring.
        text.append(" The figures keep updating.", style="dim")
    for check in verdict.get("checks") or ():
        passed = check.get("passed")
        mark = "✓" if passed else "✕"
        if passed is None:
            mark = "…"
        text.append(f"\n{mark} {check.get('name')}: {check.get('detail') or ''}")
    return text


def release_details(
    release: dict[str, Any] | None,
    now: float,
    stable_version: int | None = None,
    live: dict[str, Any] | None = None,
    is_live: bool = False,
) -> Text | Table:
    """Return the selected release: request, decisions and a canary's figures.

    ``live`` is the model's live figures (``GET /deployments/{name}/live``),
    shown under the release whose version serves as stable; ``is_live``
    marks that release (see ``live_release_ids``).
    """
    if release is None:
        return Text("Select a release.", style="dim")
    text = _release_summary(release, now, is_live)
    figures = (live or {}).get("stable")
    if (
        release.get("state") == "promoted"
        and figures
        and figures.get("version") == release.get("version")
    ):
        summary = live_summary(figures, live["window_seconds"])
        text.append(f"\nserving {summary}", style="cyan")
    if release.get("state") != "canary":
        return text

    weight = release.get("canary_weight")
    text.append(f"\ncanary at {format_percent(weight)} of traffic", style="cyan")
    figures = canary_table(release, stable_version)
    if figures is None:
        text.append(" (no verdict from the agent yet)", style="dim")
        return text
    grid = Table.grid()
    grid.add_row(text)
    grid.add_row(figures)
    grid.add_row(verdict_text(release))
    return grid


def _release_summary(release: dict[str, Any], now: float, is_live: bool) -> Text:
    text = Text(
        f"release {release['id']} · {release.get('model')} v{release.get('version')} · "
    )
    text.append(state_text(release.get("state"), is_live))
    created = release.get("created_at")
    age = f"{format_age(now - created)} ago" if created else ""
    text.append(
        f" · requested by {release.get('requested_by')} {age}: "
        f"{release.get('reason') or ''}"
    )
    for approval in approvals_of(release):
        mark = "✓" if approval.get("decision") == "approve" else "✕"
        text.append(f"\n{mark} {approval.get('actor')}: {approval.get('reason') or ''}")
    if release.get("state_reason") and release.get("state") != "pending":
        text.append(
            f"\n{release.get('state')} by {release.get('state_changed_by')}: "
            f"{release['state_reason']}"
        )
    return text


class ReleasesScreen(ConsoleScreen):
    """Approve or reject pending releases, promote or abort canaries, roll back."""

    VIEW = "releases"
    BINDINGS = [
        Binding("a", "approve", "Approve", id="approve"),
        Binding("x", "reject", "Reject", id="reject"),
        Binding("p", "promote", "Promote", id="promote"),
        Binding("A", "abort", "Abort", id="abort"),
        Binding("b", "rollback", "Roll back", id="rollback"),
    ]

    def __init__(self, filter_text: str = "") -> None:
        super().__init__(filter_text)
        # Keys of the pending releases at the last redraw; None before it.
        self._pending_seen: set[str] | None = None

    def compose_body(self) -> ComposeResult:
        yield ResourceTable(COLUMNS, id="releases")
        # Focusable, so Tab reaches the canary figures and the arrow keys
        # scroll them when they do not fit (at 80x24 they do not).
        with VerticalScroll(id="release-details-pane"):
            yield Static(id="release-details")

    def poll_plan(self) -> dict[str, set[str]]:
        plan = {
            name: {resources.RELEASES, resources.DEPLOYMENTS}
            for name in self.rigdeck.clients
        }
        selected = self._selected()
        if selected is not None and selected[1].get("state") == "canary":
            plan[selected[0]].add(f"{resources.RELEASE_PREFIX}{selected[1]['id']}")
        if selected is not None and selected[1].get("state") == "promoted":
            plan[selected[0]].add(resources.LIVE_PREFIX + selected[1]["model"])
        return plan

    def refresh_view(self, agents: set[str] | None) -> None:
        now = self.rigdeck.clock()
        releases = []
        live: set[tuple[str, int]] = set()
        for client, data in self.clients():
            releases.extend((client.name, release) for release in data.releases or ())
            live.update((client.name, id_) for id_ in live_release_ids(data))
        releases.sort(key=lambda pair: sort_key(pair[1]))
        self.set_rows_of(
            "releases",
            [
                self._row(agent, r, now, (agent, r["id"]) in live)
                for agent, r in releases
            ],
        )
        self._follow_pending(
            [
                row_key(agent, r["id"])
                for agent, r in releases
                if r.get("state") == "pending"
            ]
        )
        self._show_details()
        super().refresh_view(agents)

    def _follow_pending(self, pending: list[str]) -> None:
        """Move the cursor to the next release that waits for approval.

        That is when the release under the cursor stops waiting (approved
        or rejected), or when a new one begins to wait while the cursor
        rests on a finished release. One the user is still deciding on
        (pending, approved, canary) keeps the cursor.
        """
        seen, self._pending_seen = self._pending_seen, set(pending)
        if seen is None or not pending:
            return
        table = self.query_one("#releases", ResourceTable)
        key = table.selected_key
        if key in seen and key not in pending:
            table.select_key(pending[0])
            return
        selected = self._selected()
        new = [k for k in pending if k not in seen]
        if new and not (selected and selected[1].get("state") in STATE_ORDER):
            table.select_key(new[0])

    def _row(self, agent: str, release: dict[str, Any], now: float, live: bool) -> Row:
        created = release.get("created_at")
        return Row(
            row_key(agent, release["id"]),
            (
                agent,
                str(release["id"]),
                release.get("model") or NO_VALUE,
                f"v{release.get('version')}",
                state_text(release.get("state"), live),
                approvals_text(release),
                truncate(release.get("requested_by") or NO_VALUE, 10),
                format_age(now - created) if created else NO_VALUE,
                truncate(release.get("reason") or "", 30),
            ),
        )

    def _show_details(self) -> None:
        selected = self._selected()
        release = None
        if selected is not None:
            agent, release = selected
            detail = self.rigdeck.data[agent].release_details.get(release["id"])
            if detail is not None and detail.get("state") == release.get("state"):
                release = {**release, **detail}
        stable = live = None
        is_live = False
        if selected is not None:
            data = self.rigdeck.data[agent]
            deployment = data.deployment(release.get("model", ""))
            stable = (deployment or {}).get("stable_version")
            live = data.live.get(release.get("model", ""))
            is_live = release["id"] in live_release_ids(data)
        self.query_one("#release-details", Static).update(
            release_details(release, self.rigdeck.clock(), stable, live, is_live)
        )

    def selection_changed(self) -> None:
        if self.is_mounted:
            self._show_details()
        super().selection_changed()

    def _selected(self) -> tuple[str, dict[str, Any]] | None:
        key = self.selected("releases")
        if key is None:
            return None
        agent, release_id = split_key(key)
        for release in self.rigdeck.data[agent].releases or ():
            if str(release["id"]) == release_id:
                return agent, release
        return None

    def selected_agent(self) -> str | None:
        selected = self._selected()
        return selected[0] if selected else None

    def action_target(self, action: str) -> tuple[str | None, str | None]:
        selected = self._selected()
        if selected is None:
            return None, "select a release"
        agent, release = selected
        if action == "rollback":
            deployment = self.rigdeck.data[agent].deployment(release.get("model", ""))
            if not (deployment or {}).get("stable_version"):
                return agent, f"{release.get('model')} has no version in production"
            if (
                "rollback_version" in deployment
                and deployment["rollback_version"] is None
                and not deployment.get("canary_version")
            ):
                return agent, (
                    f"{release.get('model')} has no earlier stable version to "
                    "roll back to"
                )
            return agent, None
        if action not in ACTION_STATES:
            return super().action_target(action)
        states = ACTION_STATES[action]
        if release.get("state") not in states:
            return agent, (
                f"release {release['id']} is {release.get('state')}; "
                f"{action} applies to {' or '.join(states)} releases"
            )
        return agent, None

    def personal_blocker(self, agent: str, action: str) -> str | None:
        """Apply the four-eyes rule: a requester may not approve their own request."""
        me = self.rigdeck.clients[agent].identity.name
        selected = self._selected()
        if me is None or selected is None or action not in ("approve", "reject"):
            return None
        release = selected[1]
        if action == "approve" and release.get("requested_by") == me:
            return "you requested this release; another approver must approve it"
        for approval in approvals_of(release):
            if approval.get("actor") == me:
                return f"you already chose to {approval.get('decision')} it"
        return None

    # Actions.

    def _confirm(self, action: str, verb: str, consequence: str) -> None:
        if self.refuse_if_blocked(action):
            return
        agent, release = self._selected()  # type: ignore[misc]
        title = (
            f"{verb} release {release['id']}: {release.get('model')} "
            f"v{release.get('version')} on {agent}"
        )
        dialog = ReasonDialog(
            title, consequence, confirm_label=verb, reason_required=True
        )

        def send(reason: str | None) -> None:
            if reason is None:
                return
            self.rigdeck.act(
                agent,
                action,
                f"release {release['id']}",
                f"/api/v1/releases/{release['id']}/{action}",
                {"reason": reason},
            )

        self.app.push_screen(dialog, send)

    def action_approve(self) -> None:
        self._confirm(
            "approve",
            "Approve",
            "With enough approvals the version goes to canary, or straight to "
            "stable when the model serves nothing yet.",
        )

    def action_reject(self) -> None:
        self._confirm(
            "reject", "Reject", "The release ends; the version is not deployed."
        )

    def action_promote(self) -> None:
        self._confirm(
            "promote", "Promote", "The canary becomes stable and takes all traffic."
        )

    def action_abort(self) -> None:
        self._confirm(
            "abort", "Abort", "Traffic returns to the stable version at once."
        )

    def action_rollback(self) -> None:
        if self.refuse_if_blocked("rollback"):
            return
        agent, release = self._selected()  # type: ignore[misc]
        confirm_rollback(self, agent, release["model"])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        selected = self._selected()
        if selected is None:
            return
        from console.screens.compare import CompareScreen

        agent, release = selected
        self.app.push_screen(CompareScreen(agent, release["model"], release["version"]))
