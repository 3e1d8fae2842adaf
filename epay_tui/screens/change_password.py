"""修改密码: from the menu, or forced after logging in with an initial or weak password."""

from __future__ import annotations

from collections.abc import Iterable

from textual import on
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Input

from epay_tui.api import errors
from epay_tui.i18n.errors import rule_list
from epay_tui.screens.base import BACK, NEXT_FIELD, EpayScreen, enter_key
from epay_tui.widgets.checklist import PasswordChecklist
from epay_tui.widgets.texts import Tr, TrButton


class ChangePasswordScreen(EpayScreen):
    """``forced`` is the login's ``password_issue``; then the old password is the one just
    typed at login, held only until the change is sent."""

    TITLE_KEY = "password.title"
    HELP = "help.password"
    BINDINGS = [NEXT_FIELD, enter_key("set_password"), BACK]

    def __init__(self, forced: str | None = None, old_password: str | None = None) -> None:
        super().__init__()
        self.forced = forced
        self._old_password = old_password

    def compose_body(self) -> Iterable[Widget]:
        if self.forced:
            yield Tr(f"password.forced_{self.forced}", classes="notice")
        with Vertical(classes="form"):
            if not self.forced:
                with Horizontal(classes="field"):
                    yield Tr("password.old", classes="label")
                    yield Input(id="old", password=True, max_length=128, compact=True)
            with Horizontal(classes="field"):
                yield Tr("password.new", classes="label")
                yield Input(id="new", password=True, max_length=128, compact=True)
            with Horizontal(classes="field"):
                yield Tr("password.confirm", classes="label")
                yield Input(id="confirm", password=True, max_length=128, compact=True)
            username = self.epay.session.username if self.epay.session else ""
            yield PasswordChecklist(username, id="checklist")
            with Horizontal(classes="buttons"):
                yield TrButton("password.submit", id="submit", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#new" if self.forced else "#old", Input).focus()

    @on(Input.Changed, "#new")
    def _live_check(self, event: Input.Changed) -> None:
        self.query_one(PasswordChecklist).check(event.value)

    @on(Input.Submitted, "#old")
    def _to_new(self) -> None:
        self.query_one("#new", Input).focus()

    @on(Input.Submitted, "#new")
    def _to_confirm(self) -> None:
        self.query_one("#confirm", Input).focus()

    @on(Input.Submitted, "#confirm")
    @on(TrButton.Pressed, "#submit")
    def action_submit(self) -> None:
        old = self._old_password if self.forced else self.query_one("#old", Input).value
        new = self.query_one("#new", Input).value
        confirm = self.query_one("#confirm", Input).value
        if not (old and new and confirm):
            self.say("password.missing", severity="error")
            return
        reasons = self.query_one(PasswordChecklist).check(new)
        if old == new:
            reasons.append("SAME_AS_OLD")
        if reasons:
            self._refused(reasons)
            return
        if new != confirm:
            self.say("password.mismatch", severity="error")
            self.query_one("#confirm", Input).value = ""
            self.query_one("#confirm", Input).focus()
            return
        self.call_api(
            lambda api: api.change_password(old, new),
            lambda _: self._changed(),
            failed=self._failed,
            group="password",
        )

    def _refused(self, reasons: list[str]) -> None:
        self.say("password.refused", severity="error", items=rule_list(reasons))
        self.query_one("#new", Input).focus()

    def _failed(self, exc: errors.ApiError) -> bool:
        if isinstance(exc, errors.WeakPassword):
            self._refused(list(exc.details.get("reasons", [])))
            return True
        if isinstance(exc, errors.BadCredentials) and not self.forced:
            self.query_one("#old", Input).value = ""
            self.query_one("#old", Input).focus()
        return False

    def _changed(self) -> None:
        self._old_password = None
        self.app.notify(self.t("password.done"))
        self.epay.start_over("menu")

    async def action_back(self) -> None:
        if self.forced:  # no way past a forced change but out
            self._old_password = None
            await self.epay.end_session()
        else:
            self.dismiss()
