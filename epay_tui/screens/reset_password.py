"""忘记密码 in three steps: identity, a code by SMS or e-mail, the new password."""

from __future__ import annotations

from collections.abc import Iterable

from textual import on
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Input, RadioButton, RadioSet

from epay_tui.api import errors
from epay_tui.api.models import ResetStarted
from epay_tui.flow.reset import PasswordReset
from epay_tui.i18n import tr
from epay_tui.i18n.errors import rule_list
from epay_tui.screens.base import BACK, NEXT_FIELD, enter_key
from epay_tui.screens.captcha_flow import CaptchaForm
from epay_tui.widgets.checklist import PasswordChecklist
from epay_tui.widgets.texts import Tr, TrButton

STEP_TITLES = {"identity": "reset.step1", "channels": "reset.step2", "complete": "reset.step3"}


class ResetPasswordScreen(CaptchaForm):
    TITLE_KEY = "reset.title"
    HELP = "help.reset"
    BINDINGS = [NEXT_FIELD, enter_key("submit"), CaptchaForm.NEW_CAPTCHA, BACK]

    def __init__(self, username: str = "") -> None:
        super().__init__()
        self.prefill = username
        self.reset = PasswordReset(username)

    def compose_body(self) -> Iterable[Widget]:
        yield Tr("reset.step1", id="step")
        with ContentSwitcher(initial="identity", id="steps"):
            with Vertical(id="identity", classes="form"):
                for field, key, limit in (
                    ("username", "login.username", 32),
                    ("name", "reset.name", 32),
                    ("id_card", "reset.id_card", 18),
                ):
                    with Horizontal(classes="field"):
                        yield Tr(key, classes="label")
                        yield Input(
                            self.prefill if field == "username" else "",
                            id=field,
                            max_length=limit,
                            compact=True,
                        )
                yield from self.compose_captcha()
                with Horizontal(classes="buttons"):
                    yield TrButton("reset.next", id="next", variant="primary")
            with Vertical(id="channels", classes="form"):
                yield RadioSet(id="channel")
                with Horizontal(classes="buttons"):
                    yield TrButton("reset.send", id="send", variant="primary")
                    yield TrButton("reset.back_to_login", id="back-to-login")
            with Vertical(id="complete", classes="form"):
                with Horizontal(classes="field"):
                    yield Tr("reset.code", classes="label")
                    yield Input(id="code", max_length=6, restrict=r"\d*", compact=True)
                    yield TrButton("reset.send", id="resend")
                with Horizontal(classes="field"):
                    yield Tr("password.new", classes="label")
                    yield Input(id="new", password=True, max_length=128, compact=True)
                with Horizontal(classes="field"):
                    yield Tr("password.confirm", classes="label")
                    yield Input(id="confirm", password=True, max_length=128, compact=True)
                yield PasswordChecklist(self.reset.username, id="checklist")
                with Horizontal(classes="buttons"):
                    yield TrButton("reset.submit", id="complete-button", variant="primary")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#back-to-login").display = False
        self.query_one("#name" if self.prefill else "#username", Input).focus()
        self.action_new_captcha()
        self.set_interval(1, self._tick)

    # ----------------------------------------------------------------- step 1
    @on(Input.Submitted, "#username, #name, #id_card")
    def _next_field(self) -> None:
        self.focus_next()

    @on(Input.Submitted, "#captcha")
    @on(TrButton.Pressed, "#next")
    def start(self) -> None:
        fields = ("username", "name", "id_card")
        if not self.filled(*fields, missing="reset.missing"):
            return
        username, name, id_card = (self.query_one(f"#{f}", Input).value.strip() for f in fields)
        captcha = self.take_captcha()
        if captcha is None:
            return
        self.call_api(
            lambda api: self.reset.start(api, username, name, id_card, captcha),
            self._started,
            failed=self._start_failed,
            group="reset",
        )

    def _start_failed(self, exc: errors.ApiError) -> bool:
        self.show_error(exc)
        self.action_new_captcha()
        self.query_one("#captcha", Input).focus()
        return True

    async def _started(self, started: ResetStarted) -> None:
        self.query_one(PasswordChecklist).username = self.reset.username
        self.message.clear()
        self._show_step()
        buttons = [
            RadioButton(
                tr(self.app.language, f"reset.channel_{c.channel}", to=c.to),
                value=index == 0,
                name=c.channel,
            )
            for index, c in enumerate(started.channels)
        ]
        await self.query_one(RadioSet).remove()  # a fresh set knows its pressed button
        radios = RadioSet(*buttons, id="channel")
        await self.query_one("#channels").mount(radios, before=0)
        back = self.query_one("#back-to-login", TrButton)
        back.display = not started.channels
        if not started.channels:  # the helpdesk path: say so, and leave one way out
            radios.display = False
            self.query_one("#send").display = False
            self.query_one("#step", Tr).show("reset.helpdesk_step")
            self.say("reset.no_contact", severity="error")
            back.focus()
            return
        self.call_after_refresh(radios.focus)

    # ----------------------------------------------------------------- step 2
    @on(TrButton.Pressed, "#back-to-login")
    def _back_to_login(self) -> None:
        self.dismiss()

    @on(TrButton.Pressed, "#send, #resend")
    def send(self) -> None:
        if not self.reset.channels:
            return
        pressed = self.query_one(RadioSet).pressed_button
        channel = pressed.name if pressed else None
        now = self.epay.clock.now()
        self.call_api(
            lambda api: self.reset.send(api, now, channel),
            self._sent,
            failed=self._send_failed,
            group="send",
        )

    def _sent(self, to: str) -> None:
        self.say("reset.sent", severity="ok", to=to)
        self._show_step()
        self._tick()
        self.query_one("#code", Input).focus()

    def _send_failed(self, exc: errors.ApiError) -> bool:
        if isinstance(exc, errors.ResetExpired):
            self._restart(exc)
            return True
        return False

    def _tick(self) -> None:
        """The resend button counts down the 60 s the backend enforces."""
        button = self.query_one("#resend", TrButton)
        if self.reset.sent_at is None:
            return
        left = self.reset.resend_in(self.epay.clock.now())
        if left > 0:
            button.disabled = True
            button.label = tr(self.app.language, "reset.resend_in", seconds=left)
        else:
            button.disabled = False
            button.retranslate()

    # ----------------------------------------------------------------- step 3
    @on(Input.Changed, "#new")
    def _live_check(self, event: Input.Changed) -> None:
        self.query_one(PasswordChecklist).check(event.value)

    @on(Input.Submitted, "#code, #new")
    def _next_password_field(self) -> None:
        self.focus_next()

    @on(Input.Submitted, "#confirm")
    @on(TrButton.Pressed, "#complete-button")
    def complete(self) -> None:
        code = self.query_one("#code", Input).value.strip()
        new = self.query_one("#new", Input).value
        confirm = self.query_one("#confirm", Input).value
        if not (code and new and confirm) or self.reset.started is None:
            self.say("reset.missing", severity="error")
            return
        reasons = self.query_one(PasswordChecklist).check(new)
        if reasons:
            self.say("password.refused", severity="error", items=rule_list(reasons))
            self.query_one("#new", Input).focus()
            return
        if new != confirm:
            self.say("password.mismatch", severity="error")
            self.query_one("#confirm", Input).focus()
            return
        self.call_api(
            lambda api: self.reset.complete(api, code, new),
            lambda _: self._done(),
            failed=self._complete_failed,
            group="complete",
        )

    def _complete_failed(self, exc: errors.ApiError) -> bool:
        if isinstance(exc, errors.ResetExpired):
            self._restart(exc)
            return True
        if isinstance(exc, errors.WeakPassword):
            self.query_one("#new", Input).focus()
        else:
            self.query_one("#code", Input).value = ""
            self.query_one("#code", Input).focus()
        return False

    def _restart(self, exc: errors.ApiError) -> None:
        """The reset is void (expired or too many wrong codes): back to step 1."""
        self.reset.restart()
        self._show_step()
        self.show_error(exc)
        self.action_new_captcha()

    def _done(self) -> None:
        self.epay.start_over("login", username=self.reset.username, notice="reset.done")

    def _show_step(self) -> None:
        step = self.reset.step
        self.query_one(ContentSwitcher).current = step
        self.query_one("#step", Tr).show(STEP_TITLES[step])
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The captcha (and ``ctrl+r``) belongs to step 1 only."""
        if action == "new_captcha":
            return self.reset.step == "identity"
        return True

    def action_submit(self) -> None:
        """``enter`` outside the fields: the step's own button."""
        {"identity": self.start, "channels": self.send, "complete": self.complete}[
            self.reset.step
        ]()

    def action_back(self) -> None:
        self.dismiss()
