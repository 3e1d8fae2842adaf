"""Helpdesk staff login: 账号, 密码, 验证码, and "remember me" in the OS keyring."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual import on
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Checkbox, Input

from epay_tui.api import errors
from epay_tui.flow.login import log_in_staff, resume_staff
from epay_tui.flow.remember import remember_token, remembered_token
from epay_tui.i18n import tr
from epay_tui.screens.base import NEXT_FIELD, enter_key
from epay_tui.screens.captcha_flow import CaptchaForm
from epay_tui.widgets.texts import Tr, TrButton

if TYPE_CHECKING:
    from epay_tui.flow.session import Session


class StaffLoginScreen(CaptchaForm):
    TITLE_KEY = "staff.login_title"
    HELP = "help.staff_login"
    BINDINGS = [NEXT_FIELD, enter_key("log_in"), CaptchaForm.NEW_CAPTCHA]

    def __init__(
        self, notice: str | None = None, severity: str = "ok", values: dict | None = None
    ) -> None:
        super().__init__()
        self.notice = (notice, severity, values or {})

    def compose_body(self) -> Iterable[Widget]:
        with Vertical(classes="form"):
            with Horizontal(classes="field"):
                yield Tr("staff.account", classes="label")
                yield Input(id="username", max_length=32, compact=True)
            with Horizontal(classes="field"):
                yield Tr("login.password", classes="label")
                yield Input(id="password", password=True, max_length=128, compact=True)
            yield from self.compose_captcha()
            yield Checkbox(tr(self.app.language, "staff.remember"), id="remember", compact=True)
            with Horizontal(classes="buttons"):
                yield TrButton("login.submit", id="login", variant="primary")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#username", Input).focus()
        notice, severity, values = self.notice
        if notice:
            self.say(notice, severity=severity, **values)
        else:
            self.run_worker(self._remembered(), group="remembered", exit_on_error=False)
        self.load_form()

    async def _remembered(self) -> None:
        """A login remembered in the keyring (read in a thread) skips the form if valid."""
        account = self.epay.settings.server or "embedded"
        token = await self.run_worker(lambda: remembered_token(account), thread=True).wait()
        if not token:
            return
        api = await self.epay.api_client()
        try:
            session = await resume_staff(api, token)
        except errors.TransportError:
            return  # the backend is away: the form stays, and so does the remembered login
        if session is None:  # stale: forget it for good
            await self.run_worker(lambda: remember_token(account, None), thread=True).wait()
            return
        self.epay.start_session(session)
        self.epay.start_over("helpdesk")

    def retranslate(self) -> None:
        super().retranslate()
        self.query_one("#remember", Checkbox).label = tr(self.app.language, "staff.remember")

    @on(Input.Submitted, "#username, #password")
    def _next(self) -> None:
        self.focus_next()

    @on(Input.Submitted, "#captcha")
    @on(TrButton.Pressed, "#login")
    def action_submit(self) -> None:
        attempt = self.credentials()
        if attempt is None:
            return
        username, password, captcha_id, answer = attempt
        remember = self.query_one("#remember", Checkbox).value
        self.call_api(
            lambda api: log_in_staff(api, username, password, captcha_id, answer),
            lambda session: self._logged_in(session, remember),
            failed=self._failed,
            group="staff-login",
        )

    def _failed(self, exc: errors.ApiError) -> bool:
        self.show_error(exc)
        self.query_one("#password", Input).value = ""
        self.action_new_captcha()
        self.query_one("#password", Input).focus()
        return True

    async def _logged_in(self, session: Session | None, remember: bool) -> None:
        if session is None:  # a student account cannot open the helpdesk
            self.query_one("#password", Input).value = ""
            self.say("staff.not_staff", severity="error")
            self.action_new_captcha()
            return
        self.epay.start_session(session)
        api = await self.epay.api_client()
        if remember:
            token = api.token or ""
            account = self.epay.settings.server or "embedded"
            worker = self.run_worker(lambda: remember_token(account, token), thread=True)
            remembered = await worker.wait()
            self.app.notify(self.t("staff.remembered" if remembered else "staff.not_remembered"))
        self.epay.start_over("helpdesk")
