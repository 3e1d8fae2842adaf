"""The captcha part of a form (login, reset, staff login): show, refresh, use once."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Input

from epay_tui.api import errors
from epay_tui.i18n import tr
from epay_tui.screens.base import EpayScreen
from epay_tui.widgets.captcha import CaptchaImage
from epay_tui.widgets.texts import Tr, TrButton

if TYPE_CHECKING:
    from epay_tui.api.models import Captcha, Meta

log = logging.getLogger("epay_tui.screens")
RETRY_DELAYS = (1, 2, 4, 8, 15, 30)
"""Back-off between automatic retries while the backend cannot be reached (seconds)."""


class CaptchaForm(EpayScreen):
    """A screen whose form ends in 验证码 with the image under it; ``ctrl+r`` 换一张."""

    BINDINGS = [Binding("ctrl+r", "new_captcha", "refresh", id="refresh_captcha")]
    captcha_id: str | None = None
    _busy = False
    _retry_now: asyncio.Event | None = None

    def load_form(self) -> None:
        """Meta and a first captcha, retried with back-off while the backend is away."""
        self.run_worker(self._load(), group="load", exclusive=True, exit_on_error=False)

    async def _load(self) -> None:
        api = await self.epay.api_client()
        self._retry_now = asyncio.Event()
        attempt = 0
        while True:
            try:
                meta = self.epay.meta or await api.meta()
                captcha = await api.new_captcha()
            except errors.ApiError as exc:
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                attempt += 1
                self._busy = True
                self.say("app.busy_retrying", severity="error", seconds=delay)
                log.info("backend unreachable: %s", exc.code)
                self._retry_now.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._retry_now.wait(), timeout=delay)
                continue
            break
        if self._busy:
            self._busy = False
            self.message.clear()
        self.show_meta(meta)
        self.show_captcha(captcha)

    def key_activity(self) -> bool:
        """Any key (the app tells us before bindings or fields take it) retries now.

        The key still goes on to its field: typing is never lost to a retry."""
        if self._busy and self._retry_now is not None:
            self._retry_now.set()
        return False

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
