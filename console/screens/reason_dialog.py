"""A confirmation dialog that shows what an action will do and takes a reason."""

from __future__ import annotations

from rich.console import RenderableType
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class ReasonDialog(ModalScreen[str | None]):
    """Dismisses with the reason entered (possibly empty), or None when cancelled.

    Args:
        title: what is about to happen, e.g. ``Roll back shuttle on gpu-a``.
        details: more lines shown above the reason, e.g. the versions involved.
        confirm_label: the confirm button's label.
        reason_required: refuse to confirm with an empty reason.
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
    ]

    DEFAULT_CSS = """
    ReasonDialog {
        align: center middle;
    }
    ReasonDialog > Vertical {
        width: 72;
        max-width: 100%;
        height: auto;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    ReasonDialog .title {
        text-style: bold;
        width: 100%;
    }
    ReasonDialog .details {
        margin: 1 0;
    }
    ReasonDialog .error {
        color: $error;
        height: auto;
    }
    ReasonDialog Horizontal {
        height: auto;
        align-horizontal: right;
    }
    ReasonDialog Button {
        margin: 0 0 0 1;
    }
    """

    def __init__(
        self,
        title: str,
        details: RenderableType = "",
        confirm_label: str = "Confirm",
        reason_required: bool = False,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.details = details
        self.confirm_label = confirm_label
        self.reason_required = reason_required

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            if self.details:
                yield Static(self.details, classes="details")
            placeholder = "reason (required)" if self.reason_required else "reason"
            yield Input(placeholder=placeholder, id="reason")
            yield Label("", classes="error", id="error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, variant="primary", id="confirm")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm":
            self._confirm()
        else:
            self.action_cancel()

    def _confirm(self) -> None:
        reason = self.query_one("#reason", Input).value.strip()
        if self.reason_required and not reason:
            self.query_one("#error", Label).update(
                "A reason is required: it goes into the audit log."
            )
            return
        self.dismiss(reason)

    def action_cancel(self) -> None:
        self.dismiss(None)
