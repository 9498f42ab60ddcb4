"""The ``/`` filter prompt: narrows the focused table as the user types."""

from __future__ import annotations

from textual.widgets import Input

from console.messages import FilterChanged
from console.widgets.prompt_bar import PromptBar


class FilterBar(PromptBar):
    """A prompt that posts ``FilterChanged`` on every edit.

    Enter keeps the filter and returns to the table; Escape clears it.
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__("/", "words that every shown row must contain", id=id)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(FilterChanged(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        super().action_close()

    def action_close(self) -> None:
        self.post_message(FilterChanged(""))
        super().action_close()
