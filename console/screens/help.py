"""``?``: every key binding of the screen below, the commands and the symbols."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from console.roles import ACTION_ROLES

COMMANDS = (
    (":fleet", "every agent at a glance (the first screen)"),
    (":host NAME", "one agent's GPUs, processes, CPU, memory and disks"),
    (":runs [FILTER]", "jobs with their next fire, runs with progress"),
    (":models [FILTER]", "versions, gates, lineage; compare with production"),
    (":releases [FILTER]", "pending approvals first, canaries, rollback"),
    (":drift [FILTER]", "drift monitors and events"),
    (":alerts [FILTER]", "alerts; acknowledge"),
    (":audit [FILTER]", "the audit log; verify its hash chain"),
    (":quit", "leave the console (also ctrl+q)"),
)
SYMBOLS = (
    ("● ok", "the agent answered within 2 s; the age is of its last data"),
    ("◐ slow", "an answer took over 2 s, or is still awaited"),
    ("✕ unreachable", "no connection; retried with backoff up to 30 s"),
    ("▕██▌ ▏", "a bar: filled share of utilisation or memory; dots: unknown"),
    ("3 ◇4", "model serves stable v3 and canary v4"),
    ("3 !4", "a release of v4 waits for approval"),
    ("★ live  ○ superseded", "release serving now; promoted once, since replaced"),
    ("! pending  ↩ rolled_back", "waits for approval; ended by a rollback"),
    ("✓ ✕ … !", "passed, failed, pending, overridden (gates, runs)"),
)


class HelpScreen(ModalScreen[None]):
    """Lists the bindings of ``screen`` with each disabled action's reason."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", key_display="?"),
        Binding("q", "dismiss", "Close", show=False),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 90%;
        max-width: 100;
        height: 90%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.described = screen

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._keys_table())
            yield Static(self._pairs_table("Commands", COMMANDS))
            yield Static(self._pairs_table("Symbols", SYMBOLS))

    def _keys_table(self) -> Table:
        """Return the screen's keys first, then the app's, then how to move.

        The focused table's own bindings (cursor keys, pages) are summed up
        in one row, so that they do not bury the screen's keys.
        """
        table = Table(title="Keys", title_justify="left", expand=True, box=None)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("does")
        table.add_column("available", overflow="fold")
        active = sorted(self.described.active_bindings.values(), key=self._order)
        for item in active:
            if self._order(item) < 3 and _ours(item):
                table.add_row(*self._describe(item.binding, item.enabled))
        table.add_row("↑ ↓ g G", "move in the table; PgUp, PgDn a page", "")
        table.add_row("Tab", "the next table of the screen", "")
        if getattr(self.app, "readonly", False):
            table.add_row("", "state-changing actions", "hidden: read-only console")
        return table

    def _order(self, item: ActiveBinding) -> int:
        """Actions first, then the screen's own keys, the app's, the rest."""
        if item.binding.action in ACTION_ROLES:
            return 0
        if item.node is self.described:
            return 1
        return 2 if item.node is self.app else 3

    def _describe(self, binding: Binding, enabled: bool) -> tuple[str, str, Text]:
        action = binding.action.rpartition(".")[2]
        state = Text("yes" if enabled else "disabled")
        blocker = getattr(self.described, "action_blocker", None)
        if action in ACTION_ROLES and blocker is not None:
            reason = blocker(action)
            if reason:
                state = Text(f"disabled: {reason}", style="dim")
        display = binding.key_display or self.app.get_key_display(binding)
        return display, binding.description or action, state

    def _pairs_table(self, title: str, pairs: tuple[tuple[str, str], ...]) -> Table:
        table = Table(title=title, title_justify="left", expand=True, box=None)
        table.add_column("", style="bold", no_wrap=True)
        table.add_column("")
        for left, right in pairs:
            table.add_row(left, right)
        return table


def _ours(item: ActiveBinding) -> bool:
    """Return whether the console defines the binding, not Textual's defaults."""
    binding = item.binding
    for cls in type(item.node).__mro__:
        if not cls.__module__.startswith("console."):
            continue
        for ours in vars(cls).get("BINDINGS", ()):
            if isinstance(ours, Binding) and (ours.key, ours.action) == (
                binding.key,
                binding.action.rpartition(".")[2],
            ):
                return True
    return False
