"""A modal question with buttons; ``escape`` answers None (取消)."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen

from epay_tui.widgets.texts import Tr, TrButton


class Choice(ModalScreen[str | None]):
    """Ask ``message`` (a catalog key with values); dismisses with the chosen button id.

    ``keys`` maps extra keys to button ids (e.g. ``{"1": "wechat"}``); ``enter`` presses
    the focused button, which starts on the first one.
    """

    BINDINGS = [Binding("escape", "dismiss_none", "cancel", id="cancel")]

    def __init__(
        self,
        message: str,
        buttons: list[tuple[str, str]],
        *,
        keys: dict[str, str] | None = None,
        focus: str | None = None,
        **values: Any,
    ) -> None:
        super().__init__()
        self.focus_id = focus
        self.message_key, self.values = message, values
        self.buttons = buttons
        self.keys = keys or {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Tr(self.message_key, classes="dialog-text", **self.values)
            with Horizontal(classes="buttons"):
                for index, (button_id, key) in enumerate(self.buttons):
                    yield TrButton(
                        key, id=button_id, variant="primary" if index == 0 else "default"
                    )

    def on_mount(self) -> None:
        buttons = self.query(TrButton)
        chosen = [b for b in buttons if b.id == self.focus_id]
        (chosen[0] if chosen else buttons.first()).focus()

    def on_key(self, event) -> None:
        if event.key in self.keys:
            event.stop()
            self.dismiss(self.keys[event.key])
        elif event.key in ("left", "right"):
            event.stop()
            self.focus_next() if event.key == "right" else self.focus_previous()

    @on(TrButton.Pressed)
    def _pressed(self, event: TrButton.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
