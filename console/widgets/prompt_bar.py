"""A one-line prompt docked at the bottom of a screen, shown on demand."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input, Label


class PromptBar(Horizontal):
    """A prefix label and an input; hidden until ``open`` is called.

    Escape closes the bar. Subclasses post their own messages from the
    input's events; every close posts ``PromptBar.Closed`` so the screen
    can give the focus back to its table.
    """

    class Closed(Message):
        """The bar was closed."""

    BINDINGS = [
        Binding("escape", "close", "Close", show=False),
    ]

    DEFAULT_CSS = """
    PromptBar {
        dock: bottom;
        height: 1;
        display: none;
        background: $panel;
    }
    PromptBar.-open {
        display: block;
    }
    PromptBar > Label {
        width: auto;
        padding: 0 0 0 1;
        color: $accent;
        text-style: bold;
    }
    PromptBar > Input {
        border: none;
        width: 1fr;
        height: 1;
        padding: 0 1;
        background: $panel;
    }
    PromptBar > Input:focus {
        border: none;
    }
    """

    def __init__(
        self,
        prefix: str,
        placeholder: str,
        suggester: Suggester | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.prefix = prefix
        self.placeholder = placeholder
        self.suggester = suggester

    def compose(self) -> ComposeResult:
        yield Label(self.prefix)
        yield Input(placeholder=self.placeholder, suggester=self.suggester)

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def open(self, value: str = "") -> None:
        """Show the bar with ``value`` in the input and focus it."""
        self.add_class("-open")
        self.input.value = value
        self.input.cursor_position = len(value)
        # Focus at once, not on the next idle as Widget.focus does, so that
        # keys typed right after the prefix go to the input, not to bindings.
        self.screen.set_focus(self.input)

    def action_close(self) -> None:
        self.remove_class("-open")
        self.screen.set_focus(None)
        self.post_message(self.Closed())
