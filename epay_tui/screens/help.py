"""F1: help for the screen underneath, in the current language."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen

from epay_tui.widgets.texts import Tr


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", show=False),
        Binding("enter", "close", show=False),
        Binding("f1", "close", show=False),
    ]

    def __init__(self, topic: str) -> None:
        super().__init__()
        self.topic = topic

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Tr("app.help_title", classes="screen-title")
            yield Tr(self.topic, id="help-text")
            yield Tr("app.help_close", classes="muted")

    def action_close(self) -> None:
        self.dismiss(None)
