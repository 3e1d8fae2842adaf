"""Kiosk mode: idle logout with a countdown, a fresh state after it, the staff PIN."""

from __future__ import annotations

from textual.widgets import Input

from epay_tui.api.client import ApiClient
from epay_tui.api.kdf import hash_password
from epay_tui.screens.fees import FeesScreen
from epay_tui.screens.kiosk import IdleCountdown, StaffPin
from epay_tui.screens.login import LoginScreen
from epay_tui.screens.menu import MenuScreen
from epay_tui.screens.pay import PayScreen
from tests.conftest import CHEN
from tests.payment_flows import log_in
from tests.pilot_helpers import settle_workers, until

PIN = "7391"
PIN_HASH = hash_password(PIN)


async def log_in_chen(app, pilot, server) -> None:
    await log_in(pilot, server, *CHEN)
    assert isinstance(app.screen, MenuScreen)


def visible_text(app) -> str:
    return "\n".join(
        str(getattr(widget, "value", "")) + str(widget.render())
        for screen in app.screen_stack
        for widget in screen.query("*")
    )


async def kiosk_looked_twice(pilot) -> None:
    """The kiosk has looked at the (moved) clock twice since now: whatever it was going
    to do about it, it has done."""
    app = pilot.app
    seen = app.kiosk_ticks
    await until(pilot, lambda: app.kiosk_ticks >= seen + 2, "two kiosk ticks")
    await pilot.pause()


async def test_idle_student_is_logged_out_after_the_countdown(make_ui_app, ui_server, clock):
    app = make_ui_app(kiosk=True, idle_timeout=60, staff_pin_hash=PIN_HASH)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in_chen(app, pilot, ui_server)
        await pilot.press("1")
        await until(pilot, lambda: app.screen.fees is not None, "fees")
        clock.advance(59)
        await kiosk_looked_twice(pilot)
        assert not isinstance(app.screen, IdleCountdown)
        clock.advance(2)
        await until(pilot, lambda: "20 秒后将自动退出登录" in visible_text(app), "countdown")
        assert isinstance(app.screen, IdleCountdown)
        clock.advance(21)
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), "clean login")
        await until(pilot, lambda: app.screen.captcha_id is not None, "fresh captcha")
        # nothing of the last student survives: screens, fields, session, token
        assert app.session is None and app.user is None
        assert app.api is not None and app.api.token is None
        assert len(app.screen_stack) == 2  # the base screen and one fresh login
        assert all(not field.value for field in app.screen.query(Input))
        text = visible_text(app)
        assert CHEN[0] not in text and "陈静" not in text


async def test_any_key_dismisses_the_countdown(make_ui_app, ui_server, clock):
    app = make_ui_app(kiosk=True, idle_timeout=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in_chen(app, pilot, ui_server)
        clock.advance(61)
        await until(pilot, lambda: isinstance(app.screen, IdleCountdown), "countdown")
        await pilot.press("1")  # 自助缴费 on the menu: this key is spent on the dialog
        await until(pilot, lambda: isinstance(app.screen, MenuScreen), "back on the menu")
        await settle_workers(pilot)
        assert isinstance(app.screen, MenuScreen)
        clock.advance(30)
        await kiosk_looked_twice(pilot)
        assert app.session is not None  # the key counted as activity


async def test_a_clean_login_is_left_alone(make_ui_app, clock):
    app = make_ui_app(kiosk=True, idle_timeout=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.captcha_id is not None, "captcha")
        clock.advance(600)
        await kiosk_looked_twice(pilot)
        assert isinstance(app.screen, LoginScreen)


async def test_a_half_typed_login_is_wiped(make_ui_app, clock):
    app = make_ui_app(kiosk=True, idle_timeout=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.captcha_id is not None, "captcha")
        await pilot.press(*"2024010004")
        clock.advance(61)
        await until(pilot, lambda: isinstance(app.screen, IdleCountdown), "countdown")
        clock.advance(21)
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, LoginScreen)
                and not app.screen.query_one("#username", Input).value
            ),
            "an empty login",
        )


async def test_quitting_needs_the_staff_pin(make_ui_app, clock):
    app = make_ui_app(kiosk=True, staff_pin_hash=PIN_HASH)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, StaffPin), "PIN dialog")
        await pilot.press(*"0000", "enter")
        await pilot.pause()
        assert isinstance(app.screen, StaffPin) and app.is_running
        assert "PIN 不正确" in visible_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), "back")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, StaffPin), "PIN dialog")
        await pilot.press(*PIN, "enter")
        await until(pilot, lambda: not app.is_running, "exit")


async def test_without_a_pin_a_kiosk_cannot_be_quit(make_ui_app, clock):
    app = make_ui_app(kiosk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, StaffPin), "PIN dialog")
        assert "未设置管理员 PIN" in visible_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running


async def test_no_command_palette_in_a_kiosk(make_ui_app, clock):
    app = make_ui_app(kiosk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, LoginScreen)


async def test_back_to_login_30_seconds_after_payment(make_ui_app, ui_server, clock):
    app = make_ui_app(kiosk=True, idle_timeout=600)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in_chen(app, pilot, ui_server)
        await pilot.press("1")
        await until(pilot, lambda: app.screen.fees is not None, "fees")
        await pilot.press("a", "enter")
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmOrderScreen", "confirm")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PayScreen), "pay")
        async with ApiClient(ui_server.url) as phone:
            await phone.sandbox_pay(app.screen.qr_url, "success")
        await until(pilot, lambda: app.screen.order.status == "paid", "paid")
        clock.advance(29)
        await kiosk_looked_twice(pilot)
        assert isinstance(app.screen, PayScreen)
        clock.advance(2)
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), "clean login")
        assert app.session is None and app.api.token is None


async def test_nothing_about_the_student_is_written_to_disk_or_keyring(
    make_ui_app, ui_server, clock, tmp_path, monkeypatch
):
    """A kiosk session (with the CLI's file logging on) leaves no trace of the student."""
    import logging

    import keyring
    from keyring.backend import KeyringBackend

    from epay_tui.cli import log_to_file

    class Remembering(KeyringBackend):
        priority = 1
        stored: dict = {}

        def get_password(self, service, username):
            return self.stored.get((service, username))

        def set_password(self, service, username, password):
            self.stored[(service, username)] = password

        def delete_password(self, service, username):
            self.stored.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(Remembering())
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        log_to_file()  # the data dir is under tmp_path (conftest's XDG_DATA_HOME)
        app = make_ui_app(kiosk=True, idle_timeout=60)
        async with app.run_test(size=(80, 24)) as pilot:
            await log_in_chen(app, pilot, ui_server)
            await pilot.press("1")
            await until(
                pilot,
                lambda: isinstance(app.screen, FeesScreen) and app.screen.fees is not None,
                "fees",
            )
            await pilot.press("escape", "3")
            await until(pilot, lambda: "身份证号" in visible_text(app), "profile")
            clock.advance(61)
            await until(pilot, lambda: isinstance(app.screen, IdleCountdown), "countdown")
            clock.advance(21)
            await until(pilot, lambda: isinstance(app.screen, LoginScreen), "logged out")
        for handler in root.handlers:
            handler.flush()
        written = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert any(p.name == "epay-tui.log" for p in written)  # logging did run
        for path in written:
            text = path.read_bytes().decode("utf-8", "replace")
            for secret in (CHEN[0], CHEN[1], "陈静", "13800000004", "chenjing@"):
                assert secret not in text, f"{secret!r} written to {path}"
        assert Remembering.stored == {}
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
        keyring.set_keyring(previous)
