"""The frame every main screen shares: header, banner, tables, hint, prompts, footer.

A screen names the resources it shows (``poll_plan``), redraws itself from
the app's per-agent cache (``refresh_view``) when polls land, and reports
which of its actions are possible for the selected row (``action_blocker``).
Actions a role may not take stay in the footer, dimmed, with the reason on
the hint line; in a read-only console they are hidden and refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, Static

from console.messages import FilterChanged
from console.roles import ACTION_ROLES, role_allows
from console.widgets import CommandBar, FilterBar, PromptBar, ResourceTable

if TYPE_CHECKING:
    from console.app import RigdeckApp
    from console.client import AgentClient
    from console.resources import AgentData


logger = logging.getLogger(__name__)

# Key, action and footer label of each state-changing action.
ACTION_KEYS = {
    "approve": "a",
    "reject": "x",
    "promote": "p",
    "abort": "A",
    "rollback": "b",
    "trigger": "t",
    "cancel": "c",
    "acknowledge": "k",
    "request_release": "n",
}


class ConsoleScreen(Screen):
    """Base class of the main screens; ``VIEW`` is its ``:`` command."""

    VIEW: ClassVar[str] = ""
    # Polls land one agent at a time; the screen redraws once for all the
    # polls that land within this delay.
    REDRAW_DELAY_SECONDS: ClassVar[float] = 0.2
    BINDINGS = [
        Binding("slash", "open_filter", "Filter", key_display="/", id="filter"),
        Binding("escape", "back", "Back", key_display="esc", show=False, id="back"),
        Binding("r", "refresh", "Refresh", show=False, id="refresh"),
    ]

    def __init__(self, filter_text: str = "") -> None:
        super().__init__()
        self._dirty_agents: set[str] = set()
        self._redraw_pending = False
        self._initial_filter = filter_text
        self._filter_target: ResourceTable | None = None
        self._hint_text = ""

    @property
    def rigdeck(self) -> RigdeckApp:
        return self.app  # type: ignore[return-value]

    # Layout.

    def compose(self) -> ComposeResult:
        yield Header()
        # The app's banner: one message that stays until the app changes it
        # (the demo's current step), hidden while empty.
        yield Static("", id="banner")
        yield from self.compose_body()
        yield Static("", id="hint")
        yield Footer(compact=True)
        # The bars dock on the footer's row; composed after it, an open bar
        # is drawn over the footer instead of under it.
        yield FilterBar(id="filter-bar")
        yield CommandBar(self.rigdeck.command_words(), id="command-bar")

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError

    def on_mount(self) -> None:
        self.sub_title = self.describe()
        self.watch(self.app, "banner", self._show_banner)
        self.refresh_view(None)
        # The poll that opening the screen asked for came before its tables.
        self.rigdeck.poll_now()
        if self._initial_filter:
            self.apply_filter(self._initial_filter)
        focus = self.initial_focus()
        if focus is not None:
            self.set_focus(focus)

    def initial_focus(self) -> Widget | None:
        """Return the widget that has the focus when the screen opens."""
        tables = self.tables()
        return tables[0] if tables else None

    def apply_filter(self, text: str) -> None:
        """Filter the main table by ``text``, as if typed after ``/``."""
        table = self.main_table
        if table is not None:
            table.filter_text = text
            self.update_hint()

    def _show_banner(self, text: str) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(text)
        banner.display = bool(text)

    def describe(self) -> str:
        """Return the header's subtitle: the view and the console's mode."""
        parts = [self.VIEW, f"{len(self.rigdeck.clients)} agent(s)"]
        if self.rigdeck.readonly:
            parts.append("read-only")
        return " · ".join(parts)

    # Data.

    def poll_plan(self) -> dict[str, set[str]]:
        """Return the resource kinds to fetch now, by agent name."""
        return {}

    def data_changed(self, agent: str) -> None:
        """Note that ``agent``'s data changed; redraw soon, once for many polls."""
        self._dirty_agents.add(agent)
        if not self._redraw_pending:
            self._redraw_pending = True
            self.set_timer(self.REDRAW_DELAY_SECONDS, self._redraw)

    def _redraw(self) -> None:
        agents, self._dirty_agents = self._dirty_agents, set()
        self._redraw_pending = False
        if not self.is_current:
            return
        try:
            self.refresh_view(agents)
        except Exception as error:
            # Data from one odd agent must not close the console on all of them.
            logger.exception("redrawing %s for %s failed", self.VIEW, sorted(agents))
            self._set_hint(f"redrawing failed: {error!r}; see the console log")

    def on_screen_resume(self) -> None:
        self.refresh_view(None)

    def refresh_view(self, agents: set[str] | None) -> None:
        """Redraw from the cache; ``agents`` changed, or all when None."""
        self.update_hint()

    def clients(self) -> Iterator[tuple[AgentClient, AgentData]]:
        for client in self.rigdeck.clients.values():
            yield client, self.rigdeck.data[client.name]

    # Tables, filter and prompts.

    def tables(self) -> list[ResourceTable]:
        return list(self.query(ResourceTable))

    @property
    def main_table(self) -> ResourceTable | None:
        """The focused table, else the first one; None on a screen without tables."""
        focused = self.focused
        if isinstance(focused, ResourceTable):
            return focused
        tables = self.tables()
        return tables[0] if tables else None

    def selected_agent(self) -> str | None:
        """Return the agent of the selected row, for ``:host`` without a name."""
        return None

    def action_open_filter(self) -> None:
        table = self.main_table
        if table is None:
            self.notify("This screen has no table to filter.", severity="warning")
            return
        self._filter_target = table
        self.query_one(FilterBar).open(table.filter_text)

    def on_filter_changed(self, message: FilterChanged) -> None:
        table = self._filter_target or self.main_table
        if table is not None:
            table.filter_text = message.text
        self.update_hint()

    def open_command_bar(self, value: str = "") -> None:
        self.query_one(CommandBar).open(value)

    def on_prompt_bar_closed(self, message: PromptBar.Closed) -> None:
        target = self._filter_target or self.main_table
        if target is not None and self.focused is None:
            self.set_focus(target)

    def action_back(self) -> None:
        """Close an open prompt, else clear the filter, else leave the screen."""
        for bar in self.query(PromptBar):
            if bar.is_open:
                bar.action_close()
                return
        table = self.main_table
        if table is not None and table.filter_text:
            table.filter_text = ""
            self.update_hint()
            return
        self.rigdeck.go_back()

    def action_refresh(self) -> None:
        self.rigdeck.poll_now()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.selection_changed()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        if isinstance(event.widget, ResourceTable):
            self.selection_changed()

    def selection_changed(self) -> None:
        """Re-check the actions and the hint for the newly selected row."""
        if not self.is_current:
            return
        self.refresh_bindings()
        self.update_hint()

    # Actions and their permissions.

    def action_target(self, action: str) -> tuple[str | None, str | None]:
        """Return (agent name, reason it cannot be done) for the selected row."""
        return None, "not available on this screen"

    def personal_blocker(self, agent: str, action: str) -> str | None:
        """Return why this token may not take ``action`` on the selected row.

        For rules about the person rather than the role, such as the
        four-eyes rule on releases.
        """
        return None

    def action_blocker(self, action: str) -> str | None:
        """Return why ``action`` cannot be taken now, or None when it can."""
        if self.rigdeck.readonly:
            return "the console is read-only (--readonly)"
        agent, reason = self.action_target(action)
        if reason is not None:
            return reason
        if agent is None:
            return "select a row first"
        return self._role_blocker(agent, action) or self.personal_blocker(agent, action)

    def _role_blocker(self, agent: str, action: str) -> str | None:
        identity = self.rigdeck.clients[agent].identity
        if role_allows(identity.role, action) is not False:
            return None
        token = f"token {identity.name!r}" if identity.name else "token"
        return (
            f"needs the {ACTION_ROLES[action]} role; your {token} on {agent} has "
            f"the {identity.role} role"
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_filter":
            return bool(self.tables())
        if action not in ACTION_ROLES:
            return True
        if self.rigdeck.readonly:
            return False
        return True if self.action_blocker(action) is None else None

    def screen_actions(self) -> list[str]:
        """Return the state-changing actions bound on this screen, in footer order."""
        return [
            binding.action
            for binding in self._bindings_list()
            if binding.action in ACTION_ROLES
        ]

    def _bindings_list(self) -> Iterable[Binding]:
        for binding in self.BINDINGS:
            if isinstance(binding, Binding):
                yield binding

    def update_hint(self) -> None:
        """Show why the token may not take this screen's actions on the selected row.

        Role and four-eyes reasons go on the hint line. An action that only
        does not apply to the row's state (promoting a pending release) is
        dimmed in the footer, and its key and ``?`` show the reason.
        """
        if self.rigdeck.readonly:
            self._set_hint("read-only: actions are hidden")
            return
        by_reason: dict[str, list[str]] = {}
        for action in self.screen_actions():
            agent, state_reason = self.action_target(action)
            if agent is None or state_reason is not None:
                continue
            reason = self._role_blocker(agent, action) or self.personal_blocker(
                agent, action
            )
            if reason is not None:
                by_reason.setdefault(reason, []).append(ACTION_KEYS[action])
        parts = [f"{'/'.join(keys)}: {reason}" for reason, keys in by_reason.items()]
        self._set_hint(" · ".join(parts) or self.status_text())

    def _set_hint(self, text: str) -> None:
        # Updating a Static lays out the whole screen again: skip no-ops.
        hint = self.query_one("#hint", Static)
        if text != self._hint_text:
            self._hint_text = text
            hint.update(text)

    def status_text(self) -> str:
        """Return the hint line's text for when no action is blocked."""
        filters = [t.filter_text for t in self.tables() if t.filter_text]
        return f"filter: {filters[0]}" if filters else ""

    async def on_key(self, event: events.Key) -> None:
        # Keys reach the screen before the app checks bindings. A disabled
        # binding would ignore its key, so show the reason instead.
        for binding in self._bindings_list():
            if binding.key != event.key or binding.action not in ACTION_ROLES:
                continue
            blocker = self.action_blocker(binding.action)
            if blocker is not None:
                event.stop()
                self.notify(
                    f"Cannot {self.action_label(binding.action)}: {blocker}.",
                    severity="warning",
                )
            return

    def action_label(self, action: str) -> str:
        """Return the footer's words for ``action`` (``roll back``), in lower case."""
        for binding in self._bindings_list():
            if binding.action == action and binding.description:
                return binding.description.lower()
        return action.replace("_", " ")

    def refuse_if_blocked(self, action: str) -> bool:
        """Return True (and say why) when ``action`` may not run now."""
        blocker = self.action_blocker(action)
        if blocker is None:
            return False
        self.notify(
            f"Cannot {self.action_label(action)}: {blocker}.", severity="warning"
        )
        return True

    def missing_text(self, data: AgentData, *kinds: str) -> str | None:
        """Return why one of ``kinds`` is unavailable on an agent, if it is."""
        for kind in kinds:
            if kind in data.missing:
                return data.missing[kind]
        return None

    def selected(self, table_id: str) -> str | None:
        return self.query_one(f"#{table_id}", ResourceTable).selected_key

    def set_rows_of(self, table_id: str, rows: list[Any]) -> None:
        self.query_one(f"#{table_id}", ResourceTable).set_rows(rows)
