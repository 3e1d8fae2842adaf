"""学生缴费登录: student number, password, captcha drawn in the terminal."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual import on
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Input

from epay_tui.api import errors
from epay_tui.flow.login import log_in
from epay_tui.i18n import tr
from epay_tui.screens.base import NEXT_FIELD, enter_key
from epay_tui.screens.captcha_flow import CaptchaForm
from epay_tui.widgets.texts import Tr, TrButton

if TYPE_CHECKING:
    from epay_tui.api.models import LoginResult, Meta
    from epay_tui.flow.session import Session


class LoginScreen(CaptchaForm):
    TITLE_KEY = "login.title"
    HELP = "help.login"
    BINDINGS = [NEXT_FIELD, enter_key("log_in"), CaptchaForm.NEW_CAPTCHA]

    def __init__(
        self,
        username: str = "",
        notice: str | None = None,
        severity: str = "ok",
        values: dict | None = None,
    ) -> None:
        super().__init__()
        self.prefill = username
        self.notice = (notice, severity, values or {})

    def compose_body(self) -> Iterable[Widget]:
        with Vertical(id="login-form", classes="form"):
            with Horizontal(classes="field"):
                yield Tr("login.username", classes="label")
                yield Input(self.prefill, id="username", max_length=32, compact=True)
            with Horizontal(classes="field"):
                yield Tr("login.password", classes="label")
                yield Input(id="password", password=True, max_length=128, compact=True)
            yield from self.compose_captcha()
            with Horizontal(classes="buttons"):
                yield TrButton("login.submit", id="login", variant="primary")
                yield TrButton("login.forgot", id="forgot")
        yield Tr("login.hint", id="hint", classes="muted")
        yield Tr(id="notices", classes="notice")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#username" if not self.prefill else "#password", Input).focus()
        notice, severity, values = self.notice
        if notice:
            self.say(notice, severity=severity, **values)
        self.load_form()

    def show_meta(self, meta: Meta) -> None:
        super().show_meta(meta)
        hours = meta.payment_hours
        self.query_one("#notices", Tr).show(
            "login.notices_line",
            hours=lambda lang: tr(lang, "login.hours", opens=hours.opens, closes=hours.closes),
            payee=lambda lang: tr(lang, "login.payee", payee=meta.payee),
        )

    # ----------------------------------------------------------------- submitting
    @on(Input.Submitted, "#username")
    def _to_password(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    def _to_captcha(self) -> None:
        self.query_one("#captcha", Input).focus()

    @on(Input.Submitted, "#captcha")
    @on(TrButton.Pressed, "#login")
    def action_submit(self) -> None:
        attempt = self.credentials()
        if attempt is None:
            return
        username, password, captcha_id, answer = attempt
        self.say("login.working")
        self.call_api(
            lambda api: log_in(api, username, password, captcha_id, answer),
            lambda logged_in: self._logged_in(*logged_in, password),
            failed=self._login_failed,
            group="login",
        )

    def _login_failed(self, exc: errors.ApiError) -> bool:
        """Every failed attempt used up the captcha: show a new one and say why."""
        self.show_error(exc)
        self.action_new_captcha()
        if isinstance(exc, errors.BadCredentials | errors.AccountLocked):
            self.query_one("#password", Input).value = ""
            self.query_one("#password", Input).focus()
        else:
            self.query_one("#captcha", Input).focus()
        return True

    def _logged_in(self, session: Session, result: LoginResult, password: str) -> None:
        self.epay.start_session(session)
        if result.must_change_password:
            self.epay.start_over(
                "change_password", forced=result.password_issue, old_password=password
            )
        else:
            self.epay.start_over("menu")

    @on(TrButton.Pressed, "#forgot")
    def forgot(self) -> None:
        username = self.query_one("#username", Input).value.strip()
        self.epay.go("reset_password", username=username)
