"""The ``:`` command prompt, in the k9s tradition."""

from __future__ import annotations

from textual.suggester import SuggestFromList
from textual.widgets import Input

from console.messages import CommandSubmitted
from console.widgets.prompt_bar import PromptBar


class CommandBar(PromptBar):
    """A prompt that posts ``CommandSubmitted`` on Enter and then closes.

    Args:
        commands: the command words, offered as completions while typing.
    """

    def __init__(self, commands: list[str], id: str | None = None) -> None:
        super().__init__(
            ":",
            "fleet · host NAME · runs · models · releases · drift · alerts · "
            "audit · quit",
            suggester=SuggestFromList(commands, case_sensitive=False),
            id=id,
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        command = event.value.strip()
        self.action_close()
        if command:
            self.post_message(CommandSubmitted(command))
