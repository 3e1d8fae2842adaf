"""个人信息: identity read-only; phone and e-mail editable, saved with the current password."""

from __future__ import annotations

from collections.abc import Iterable

from textual import on
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Input, Static

from epay_tui.api import errors, rules
from epay_tui.api.models import Profile
from epay_tui.screens.base import BACK, NEXT_FIELD, EpayScreen, enter_key
from epay_tui.widgets.texts import Tr, TrButton

IDENTITY = ("name", "username", "department", "major", "class_name", "id_card")


class ProfileScreen(EpayScreen):
    """``reason`` (e.g. ``PROFILE_INCOMPLETE``) says why the student was brought here."""

    TITLE_KEY = "profile.title"
    HELP = "help.profile"
    BINDINGS = [NEXT_FIELD, enter_key("save"), BACK]

    def __init__(self, reason: str | None = None) -> None:
        super().__init__()
        self.reason = reason

    def compose_body(self) -> Iterable[Widget]:
        if self.reason:
            yield Tr("profile.incomplete", id="reason", classes="notice")
        with Vertical(id="identity"):
            for field in IDENTITY:
                with Horizontal(classes="row"):
                    yield Tr(f"profile.{field}", classes="label")
                    yield Static("", id=f"show-{field}", markup=False)
        with Vertical(classes="form"):
            for field in ("phone", "email"):
                with Horizontal(classes="field"):
                    yield Tr(f"profile.{field}", classes="label")
                    yield Input(id=field, max_length=64 if field == "phone" else 254, compact=True)
                    yield Tr(id=f"{field}-problem", classes="problem")
            with Horizontal(classes="field"):
                yield Tr("profile.current_password", classes="label")
                yield Input(id="current", password=True, max_length=128, compact=True)
            with Horizontal(classes="buttons"):
                yield TrButton("profile.save", id="save", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#phone", Input).focus()
        profile = self.epay.session.profile if self.epay.session else None
        if profile is not None:
            self._show(profile)
        self.load(lambda api: api.me(), self._show, group="profile")

    def _show(self, profile: Profile) -> None:
        self.epay.set_profile(profile)
        values = {
            "name": profile.name,
            "username": profile.username,
            "department": profile.department,
            "major": profile.major,
            "class_name": profile.class_name,
            "id_card": profile.id_card_masked,
        }
        for field, value in values.items():
            self.query_one(f"#show-{field}", Static).update(value)
        self.query_one("#phone", Input).value = profile.phone or ""
        self.query_one("#email", Input).value = profile.email or ""
        self._show_problems(profile.profile_problems)

    def _show_problems(self, problems: Iterable[str]) -> None:
        problems = list(problems)
        for field, prefix in (("phone", "PHONE_"), ("email", "EMAIL_")):
            mine = [p for p in problems if p.startswith(prefix)]
            label = self.query_one(f"#{field}-problem", Tr)
            if mine:
                label.show(f"problem.{mine[0]}", severity="error")
            else:
                label.show("profile.ok", severity="ok")

    @on(Input.Changed, "#phone, #email")
    def _live_check(self) -> None:
        self._show_problems(self._local_problems())

    def _local_problems(self) -> list[str]:
        return rules.profile_problems(
            self.query_one("#phone", Input).value.strip(),
            self.query_one("#email", Input).value.strip(),
        )

    @on(Input.Submitted, "#phone")
    def _to_email(self) -> None:
        self.query_one("#email", Input).focus()

    @on(Input.Submitted, "#email")
    def _to_password(self) -> None:
        self.query_one("#current", Input).focus()

    @on(Input.Submitted, "#current")
    @on(TrButton.Pressed, "#save")
    def action_submit(self) -> None:
        phone = self.query_one("#phone", Input).value.strip()
        email = self.query_one("#email", Input).value.strip()
        password = self.query_one("#current", Input).value
        profile = self.epay.session.profile if self.epay.session else None
        if profile is not None and (phone, email) == (profile.phone or "", profile.email or ""):
            self.say("profile.unchanged")
            return
        problems = self._local_problems()
        if problems:
            self._show_problems(problems)
            self.say("profile.incomplete", severity="error")
            first = "#phone" if problems[0].startswith("PHONE") else "#email"
            self.query_one(first, Input).focus()
            return
        if not password:
            self.say("profile.needs_password", severity="error")
            self.query_one("#current", Input).focus()
            return
        self.call_api(
            lambda api: api.update_me(password, phone=phone, email=email),
            self._saved,
            failed=self._failed,
            group="save",
        )

    def _saved(self, profile: Profile) -> None:
        self.query_one("#current", Input).value = ""
        self._show(profile)
        self.say("profile.saved", severity="ok")

    def _failed(self, exc: errors.ApiError) -> bool:
        self.query_one("#current", Input).value = ""
        if isinstance(exc, errors.ValidationFailed):
            fields = exc.details.get("fields", {})
            self._show_problems(v for v in fields.values() if isinstance(v, str))
        self.query_one("#current", Input).focus()
        return False

    def action_back(self) -> None:
        self.dismiss()
