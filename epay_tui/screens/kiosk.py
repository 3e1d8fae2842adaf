"""Kiosk dialogs: the idle countdown before logout, and the staff PIN to quit."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input

from epay_tui.api.kdf import verify_password
from epay_tui.widgets.texts import Tr

if TYPE_CHECKING:
    from epay_tui.screens.base import EpayHost


class IdleCountdown(ModalScreen[None]):
    """ "Still there?": any key dismisses it; at zero the app logs the student out."""

    def __init__(self, deadline: datetime) -> None:
        super().__init__()
        self.deadline = deadline

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Tr("kiosk.idle_title", classes="screen-title")
            yield Tr(id="countdown", classes="dialog-text")
            yield Tr("kiosk.idle_any_key", classes="muted")

    def on_mount(self) -> None:
        self.tick()

    def seconds_left(self) -> int:
        app: EpayHost = self.app  # type: ignore[assignment]
        return max(0, int((self.deadline - app.clock.now()).total_seconds() + 0.999))

    def tick(self) -> None:
        self.query_one("#countdown", Tr).show("kiosk.idle_countdown", seconds=self.seconds_left())

    def key_activity(self) -> bool:
        """Any key answers "still here": it closes the dialog and is spent on it."""
        self.dismiss(None)
        return True


class StaffPin(ModalScreen[bool]):
    """Quitting a kiosk needs the staff PIN (its scrypt hash is in the config)."""

    BINDINGS = [Binding("escape", "cancel", "cancel", id="cancel")]

    def __init__(self, pin_hash: str | None) -> None:
        super().__init__()
        self.pin_hash = pin_hash

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Tr("kiosk.pin_title", classes="screen-title")
            yield Input(id="pin", password=True, max_length=32, compact=True)
            yield Tr(id="pin-message", classes="dialog-text")

    def on_mount(self) -> None:
        if not self.pin_hash:
            self.query_one("#pin").display = False
            self.query_one("#pin-message", Tr).show("kiosk.no_pin", severity="error")

    @on(Input.Submitted, "#pin")
    async def check(self, event: Input.Submitted) -> None:
        """scrypt takes tens of milliseconds: it runs in a thread, the screen stays live."""
        pin, pin_hash = event.value, self.pin_hash
        event.input.value = ""
        if pin_hash is None:
            return
        checking = self.run_worker(
            lambda: verify_password(pin, pin_hash), thread=True, group="pin", exclusive=True
        )
        if await checking.wait():
            self.dismiss(True)
        else:
            self.query_one("#pin-message", Tr).show("kiosk.pin_wrong", severity="error")

    def action_cancel(self) -> None:
        self.dismiss(False)
