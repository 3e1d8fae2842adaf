"""The captcha part of a form (login, reset, staff login): show, refresh, use once."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Input

from epay_tui.i18n import tr
from epay_tui.screens.base import EpayScreen
from epay_tui.widgets.captcha import CaptchaImage
from epay_tui.widgets.chrome import bar_key
from epay_tui.widgets.texts import Tr, TrButton

if TYPE_CHECKING:
    from epay_tui.api.client import ApiClient
    from epay_tui.api.models import Captcha, Meta


class CaptchaForm(EpayScreen):
    """A screen whose form ends in 验证码 with the image under it; ``ctrl+r`` 换一张."""

    NEW_CAPTCHA = bar_key("ctrl+r", "new_captcha", "new_captcha", "^R")
    """Each form lists it in its ``BINDINGS`` where the key bar should show it."""
    captcha_id: str | None = None

    def load_form(self) -> None:
        """Meta and a first captcha, fetched again by themselves while the backend is away."""

        async def fetch(api: ApiClient) -> tuple[Meta, Captcha]:
            return self.epay.meta or await api.meta(), await api.new_captcha()

        def show(loaded: tuple[Meta, Captcha]) -> None:
            self.show_meta(loaded[0])
            self.show_captcha(loaded[1])

        self.load(fetch, show, group="load")

    def show_meta(self, meta: Meta) -> None:
        self.epay.meta = meta
        self.epay.sandbox = meta.sandbox

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

    def filled(self, *field_ids: str, missing: str = "login.missing") -> bool:
        """Every field holds something; else say ``missing`` and focus the first empty
        one. Check before :meth:`take_captcha`, so an empty field spends no captcha."""
        for field_id in (*field_ids, "captcha"):
            field = self.query_one(f"#{field_id}", Input)
            if not field.value.strip():
                self.say(missing, severity="error")
                field.focus()
                return False
        return True

    def credentials(self) -> tuple[str, str, str, str] | None:
        """``(username, password, captcha_id, answer)`` for one login attempt; None after
        saying what is missing (then no captcha is spent) or while the captcha loads."""
        if not self.filled("username", "password"):
            return None
        captcha = self.take_captcha()
        if captcha is None:
            return None
        username = self.query_one("#username", Input).value.strip()
        return username, self.query_one("#password", Input).value, *captcha

    def take_captcha(self) -> tuple[str, str] | None:
        """``(captcha_id, answer)`` for one attempt; the captcha is spent either way."""
        answer = self.query_one("#captcha", Input).value.strip()
        if self.captcha_id is None or not answer:
            return None
        captcha_id, self.captcha_id = self.captcha_id, None
        return captcha_id, answer
