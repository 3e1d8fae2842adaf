"""The captcha part of a form (login, reset, staff login): show, refresh, use once."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Input

from epay_tui.i18n import tr
from epay_tui.screens.base import EpayScreen
from epay_tui.widgets.captcha import CaptchaImage
from epay_tui.widgets.texts import Tr, TrButton

if TYPE_CHECKING:
    from epay_tui.api.models import Captcha


class CaptchaForm(EpayScreen):
    """A screen whose form ends in 验证码 with the image under it; ``ctrl+r`` 换一张."""

    BINDINGS = [Binding("ctrl+r", "new_captcha", "refresh", id="refresh_captcha")]
    captcha_id: str | None = None

    def compose_captcha(self) -> Iterable[Widget]:
        with Horizontal(classes="field"):
            yield Tr("login.captcha", classes="label")
            yield Input(id="captcha", max_length=8, compact=True)
            yield TrButton("login.refresh", id="refresh")
        yield CaptchaImage(id="captcha-image", placeholder=tr(self.app.language, "login.loading"))

    def on_mount(self) -> None:
        refresh = self.query_one("#refresh", TrButton)
        refresh.can_focus = False  # reached with ctrl+r: keeps the tab order of ui.md

    def on_button_pressed(self, event: TrButton.Pressed) -> None:
        if event.button.id == "refresh":
            event.stop()
            self.action_new_captcha()

    def retranslate(self) -> None:
        self.query_one(CaptchaImage).placeholder = tr(self.app.language, "login.loading")

    def show_captcha(self, captcha: Captcha) -> None:
        self.captcha_id = captcha.captcha_id
        self.query_one(CaptchaImage).set_png(base64.b64decode(captcha.image_png))

    def action_new_captcha(self) -> None:
        self.query_one("#captcha", Input).value = ""
        self.query_one(CaptchaImage).set_png(None)
        self.captcha_id = None
        self.call_api(lambda api: api.new_captcha(), self.show_captcha, group="captcha")

    def take_captcha(self) -> tuple[str, str] | None:
        """``(captcha_id, answer)`` for one attempt; the captcha is spent either way."""
        answer = self.query_one("#captcha", Input).value.strip()
        if self.captcha_id is None or not answer:
            return None
        captcha_id, self.captcha_id = self.captcha_id, None
        return captcha_id, answer
