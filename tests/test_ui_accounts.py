"""Pilot flows of the account screens against the live reference backend (no mocks).

Login and its keyboard contract, the forced password change, wrong passwords and the
lockout, the three-step reset, the menu keys, the profile fix, a session the backend
ended, an unreachable backend, and ``--server`` keeping the server package unloaded.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, RadioButton, RadioSet, Static
from textual.worker import WorkerState

from epay_tui.api.client import ApiClient
from epay_tui.config import Settings
from epay_tui.screens.change_password import ChangePasswordScreen
from epay_tui.screens.help import HelpScreen
from epay_tui.screens.login import LoginScreen
from epay_tui.screens.menu import MenuScreen
from epay_tui.screens.profile import ProfileScreen
from epay_tui.screens.reset_password import ResetPasswordScreen
from epay_tui.server.config import ServerConfig
from epay_tui.server.runner import BackgroundServer
from epay_tui.widgets.captcha import CaptchaImage
from epay_tui.widgets.checklist import PasswordChecklist
from epay_tui.widgets.chrome import AppHeader
from epay_tui.widgets.texts import Tr, TrButton
from tests.conftest import (
    CHEN,
    LI,
    NEW_ZHANG,
    WANG,
    ZHANG,
    free_port,
    latest_captcha_answer,
    solve_login,
)
from tests.pilot_helpers import answer_for, fill, message, plain, screen_text, title, until

SIZE = (80, 24)  # ui.md: no screen needs more
ZHANG_ID_CARD = "320402200603152018"
LI_ID_CARD = "320411200511083429"


# ---------------------------------------------------------------------------- helpers
async def settle(pilot: Pilot) -> None:
    """Wait until no worker runs (workers may start workers) and the screen is idle."""
    app = pilot.app
    for _ in range(50):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers):
            return
    raise AssertionError("workers never settled")


def header(app: Any) -> str:
    return plain(app.screen.query_one(AppHeader).render())


def label_before(app: Any, input_id: str) -> str:
    """The label of a form field (the Tr in the same row as the input)."""
    field = app.screen.query_one(f"#{input_id}", Input).parent
    return plain(field.query_one(".label", Tr).render())


def focused_id(app: Any) -> str | None:
    return app.focused.id if app.focused is not None else None


async def start(pilot: Pilot) -> None:
    await settle(pilot)
    assert isinstance(pilot.app.screen, LoginScreen)
    assert pilot.app.screen.captcha_id is not None


def shown_answer(pilot: Pilot, server: BackgroundServer) -> str:
    """The answer of the captcha the current screen shows (and must be the latest)."""
    shown = pilot.app.screen.captcha_id
    assert shown is not None
    answer = answer_for(server, shown)
    assert answer == latest_captcha_answer(server)
    return answer


async def log_in(pilot: Pilot, server: BackgroundServer, username: str, password: str) -> None:
    """Fill in a login on a fresh login screen (focus in 学号) and submit it."""
    assert focused_id(pilot.app) == "username"
    answer = shown_answer(pilot, server)
    await fill(pilot, username=username, password=password, captcha=answer)
    await pilot.press("enter")
    await settle(pilot)


async def retry_password(pilot: Pilot, server: BackgroundServer, password: str) -> None:
    """After a refused login the focus is in 密码 (emptied): type again and submit."""
    assert focused_id(pilot.app) == "password"
    assert pilot.app.screen.query_one("#password", Input).value == ""
    await fill(pilot, password=password, captcha=shown_answer(pilot, server))
    await pilot.press("enter")
    await settle(pilot)


def find_string(root: object, needle: str) -> list[str]:
    """Paths under ``root`` (attributes of our own objects, containers, Inputs) holding
    a string that contains ``needle``."""
    found: list[str] = []
    seen: set[int] = set()

    def visit(obj: object, path: str, depth: int) -> None:
        if isinstance(obj, str):
            if needle in obj:
                found.append(path)
            return
        if id(obj) in seen or depth > 8:
            return
        seen.add(id(obj))
        if isinstance(obj, dict):
            for key, value in list(obj.items()):
                visit(key, f"{path}[key]", depth + 1)
                visit(value, f"{path}[{key!r}]", depth + 1)
        elif isinstance(obj, list | tuple | set | frozenset):
            for i, value in enumerate(list(obj)):
                visit(value, f"{path}[{i}]", depth + 1)
        elif isinstance(obj, Input):
            visit(obj.value, f"{path}.value", depth + 1)
        if type(obj).__module__.startswith("epay_tui") and hasattr(obj, "__dict__"):
            for name, value in list(vars(obj).items()):
                visit(value, f"{path}.{name}", depth + 1)

    visit(root, "root", 0)
    return found


def everything_holding(app: Any, needle: str) -> list[str]:
    """Search the app and every screen of its stack (every widget) for ``needle``."""
    found = [f"app{p[4:]}" for p in find_string(app, needle)]
    for screen in app.screen_stack:  # the app has one mode, so one stack
        found += [f"{type(screen).__name__}{p[4:]}" for p in find_string(screen, needle)]
        for widget in screen.walk_children(with_self=False):
            found += [
                f"{type(screen).__name__}/{widget.id}{p[4:]}"
                for p in find_string(widget, needle)
            ]
    return found


def outbox_codes(server: BackgroundServer, to: str) -> list[str]:
    """The 6-digit codes sent to ``to``, read from the backend's outbox in-process."""
    with server.backend.store.read() as conn:
        rows = conn.execute("SELECT to_addr, body FROM outbox ORDER BY id").fetchall()
    return [m for r in rows if r["to_addr"] == to for m in re.findall(r"\b\d{6}\b", r["body"])]


# ---------------------------------------------------------------------------- login keys
async def test_login_focus_tab_order_and_enter_in_captcha_submits(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        assert title(app) == "学生缴费登录"
        assert focused_id(app) == "username"
        order = []
        for _ in range(5):
            order.append(focused_id(app))
            await pilot.press("tab")
        assert order == ["username", "password", "captcha", "login", "forgot"]
        assert focused_id(app) == "username"  # round again
        await pilot.press("shift+tab")
        assert focused_id(app) == "forgot"
        await pilot.press("shift+tab", "shift+tab")
        assert focused_id(app) == "captcha"
        # enter in 学号 and 密码 moves on; enter in 验证码 submits
        await pilot.press("shift+tab", "shift+tab")
        await pilot.press(*CHEN[0], "enter")
        assert focused_id(app) == "password"
        await pilot.press(*CHEN[1], "enter")
        assert focused_id(app) == "captcha"
        await pilot.press(*latest_captcha_answer(ui_server), "enter")
        await settle(pilot)
        assert isinstance(app.screen, MenuScreen)
        assert app.user == (CHEN[0], "陈静")


async def test_ctrl_r_fetches_a_new_captcha_and_clears_the_field(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        screen = app.screen
        first = screen.captcha_id
        await pilot.press("tab", "tab", *"ABCD")
        assert screen.query_one("#captcha", Input).value == "ABCD"
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert screen.captcha_id is not None
        assert screen.captcha_id != first
        assert screen.query_one("#captcha", Input).value == ""
        assert screen.query_one(CaptchaImage).has_image
        # the new captcha is the one the backend issued last, and it works
        with ui_server.backend.store.read() as conn:
            latest = conn.execute(
                "SELECT captcha_id FROM captchas ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        assert latest["captcha_id"] == screen.captcha_id


async def assert_f2_toggles(
    pilot: Pilot, probe: Callable[[], object], zh: object, en: object
) -> None:
    """``probe()`` reads ``zh``; after f2 ``en``; after f2 again ``zh``."""
    assert pilot.app.language == "zh"
    assert probe() == zh
    await pilot.press("f2")
    assert pilot.app.language == "en"
    assert probe() == en
    await pilot.press("f2")
    assert pilot.app.language == "zh"
    assert probe() == zh


async def test_f2_switches_the_login_screen(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        button = app.screen.query_one("#login", TrButton)

        def probe() -> object:
            return (
                title(app),
                plain(button.label),
                label_before(app, "username"),
                label_before(app, "password"),
                label_before(app, "captcha"),
            )

        await assert_f2_toggles(
            pilot,
            probe,
            ("学生缴费登录", "登录", "学号", "密码", "验证码"),
            ("Student payment login", "Login", "Student No.", "Password", "Captcha"),
        )
        text = screen_text(app)
        assert "缴费开放时间 08:00-22:00" in text
        assert "收款方一定是 常州工程职业技术学院" in text
        assert "初始密码：身份证后六位加 Czgc" in text
        await pilot.press("f2")
        text = screen_text(app)
        assert "Payment hours 08:00-22:00" in text and "Forgot password" in text
        assert "学号" not in text and "登录" not in text


async def test_f2_switches_the_help_screen(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)

        def probe() -> object:
            return (title(app), "Ctrl+R shows a new captcha" in screen_text(app))

        await assert_f2_toggles(pilot, probe, ("帮助", False), ("Help", True))


async def test_f2_switches_the_reset_screen(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await pilot.press("tab", "tab", "tab", "tab", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ResetPasswordScreen)

        def probe() -> object:
            return (
                title(app),
                plain(app.screen.query_one("#step", Tr).render()),
                label_before(app, "name"),
                label_before(app, "id_card"),
                plain(app.screen.query_one("#next", TrButton).label),
            )

        await assert_f2_toggles(
            pilot,
            probe,
            ("忘记密码", "第一步：核对身份", "姓名", "身份证号", "下一步"),
            ("Reset password", "Step 1: who you are", "Name", "ID card No.", "Next"),
        )


async def test_f2_switches_the_forced_change_screen(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await log_in(pilot, ui_server, *ZHANG)
        assert isinstance(app.screen, ChangePasswordScreen)
        checklist = app.screen.query_one(PasswordChecklist)

        def probe() -> object:
            return (
                title(app),
                label_before(app, "new"),
                label_before(app, "confirm"),
                "8-32位" in plain(checklist.render()),
                "8-32 characters" in plain(checklist.render()),
                plain(app.screen.query_one(".notice", Tr).render()).startswith("First login"),
            )

        await assert_f2_toggles(
            pilot,
            probe,
            ("修改密码", "新密码", "确认新密码", True, False, False),
            ("Change password", "New password", "Confirm new password", False, True, True),
        )


async def test_f2_switches_the_menu_entries_and_header(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await log_in(pilot, ui_server, *CHEN)
        assert isinstance(app.screen, MenuScreen)
        entries = app.screen.query_one(OptionList)

        def probe() -> object:
            prompts = [plain(entries.get_option_at_index(i).prompt) for i in range(5)]
            return (title(app), prompts, "陈静" in header(app))

        await assert_f2_toggles(
            pilot,
            probe,
            (
                "≡ 菜单",
                ["1  自助缴费", "2  我的订单", "3  个人信息", "4  修改密码", "5  退出登录"],
                True,
            ),
            (
                "≡ Menu",
                ["1  Pay fees", "2  My orders", "3  Profile", "4  Change password", "5  Log out"],
                True,
            ),
        )


async def test_f2_switches_the_profile_screen(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await on_profile(pilot, ui_server, CHEN)

        def probe() -> object:
            return (
                title(app),
                label_before(app, "phone"),
                label_before(app, "email"),
                label_before(app, "current"),
                plain(app.screen.query_one("#save", TrButton).label),
            )

        await assert_f2_toggles(
            pilot,
            probe,
            ("个人信息", "手机号", "邮箱", "当前密码", "保存"),
            ("Profile", "Phone", "E-mail", "Current password", "Save"),
        )


async def test_f2_switches_the_menu_change_password_screen(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await log_in(pilot, ui_server, *CHEN)
        await pilot.press("4")
        await settle(pilot)
        assert isinstance(app.screen, ChangePasswordScreen)

        def probe() -> object:
            return (
                title(app),
                label_before(app, "old"),
                plain(app.screen.query_one("#submit", TrButton).label),
            )

        await assert_f2_toggles(
            pilot,
            probe,
            ("修改密码", "原密码", "确定"),
            ("Change password", "Current password", "OK"),
        )


async def test_f1_opens_help_for_the_screen_and_escape_closes_it(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await pilot.press(*"20240")
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        help_text = plain(app.screen.query_one("#help-text", Tr).render())
        assert "学号 → 密码 → 验证码 → 登录 → 忘记密码" in help_text
        await pilot.press("escape")
        assert isinstance(app.screen, LoginScreen)
        assert focused_id(app) == "username"
        assert app.screen.query_one("#username", Input).value == "20240"


# ---------------------------------------------------------------------------- forced change
async def test_first_login_forced_change_live_checklist_then_menu(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await log_in(pilot, ui_server, *ZHANG)
        screen = app.screen
        assert isinstance(screen, ChangePasswordScreen)
        assert [i.id for i in screen.query(Input)] == ["new", "confirm"]
        assert focused_id(app) == "new"
        assert "首次登录" in screen_text(app)
        # the probe sees the password while the forced change still needs it
        assert "ChangePasswordScreen._old_password" in everything_holding(app, ZHANG[1])

        checklist = screen.query_one(PasswordChecklist)
        assert "✓" not in plain(checklist.render())  # nothing typed: nothing ticked

        def ticks() -> dict[str, bool]:
            line = plain(checklist.render())
            return {name: mark == "✓" for mark, name in re.findall(r"([✓✗·]) (\S+)", line)}

        names = ["8-32位", "含字母", "含数字", "不含学号", "非初始密码", "非常见密码"]

        def failing() -> list[str]:
            state = ticks()
            assert list(state) == names
            return [name for name, ok in state.items() if not ok]

        new = screen.query_one("#new", Input)

        async def retype(text: str) -> None:
            await pilot.press("end", *["backspace"] * len(new.value), *text)

        await pilot.press(*"qzk")
        assert failing() == ["8-32位", "含数字"]
        await pilot.press("7")
        assert failing() == ["8-32位"]
        await pilot.press(*"3915")  # qzk73915
        assert failing() == []
        await retype("a1234567")
        assert failing() == ["非常见密码"]
        await retype("327156Czgc")
        assert failing() == ["非初始密码"]
        await retype("x2024010001")
        assert failing() == ["不含学号"]
        await retype("2024010001")
        assert failing() == ["含字母", "不含学号"]

        # a refused submit names the failed items and puts focus back in 新密码
        await pilot.press("tab", *"2024010001", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ChangePasswordScreen)
        refused = message(app)
        assert refused.startswith("新密码不符合要求：")
        assert "含字母" in refused and "不含学号" in refused
        assert "8-32位" not in refused and "非常见密码" not in refused
        assert focused_id(app) == "new"

        await retype(NEW_ZHANG)
        assert failing() == []
        await pilot.press("tab")
        confirm = screen.query_one("#confirm", Input)
        for _ in range(len(confirm.value)):
            await pilot.press("backspace")
        await pilot.press(*NEW_ZHANG, "enter")
        await settle(pilot)

        assert isinstance(app.screen, MenuScreen)
        assert "张伟（2024010001）" in header(app)
        assert app.session is not None and app.session.username == ZHANG[0]

        # the old password is kept nowhere any more
        assert find_string(screen, ZHANG[1]) == []
        assert everything_holding(app, ZHANG[1]) == []

    # and the backend took the new password
    async with ApiClient(ui_server.url) as api:
        result = await solve_login(api, ZHANG[0], NEW_ZHANG)
        assert result.must_change_password is False


async def test_weak_password_forces_change_with_the_weak_notice(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await log_in(pilot, ui_server, *WANG)
        assert isinstance(app.screen, ChangePasswordScreen)
        assert app.screen.forced == "weak"
        notice = plain(app.screen.query_one(".notice", Tr).render())
        assert notice == "当前密码强度不足，请修改密码"
        assert focused_id(app) == "new"
        assert [i.id for i in app.screen.query(Input)] == ["new", "confirm"]


async def test_escape_on_forced_change_logs_out(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await log_in(pilot, ui_server, *ZHANG)
        assert isinstance(app.screen, ChangePasswordScreen)
        token = app.api.token
        assert token
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert len(app.screen_stack) == 2  # the default screen and login only
        assert app.session is None and app.user is None and app.api.token is None
        assert app.screen.query_one("#username", Input).value == ""
    # the backend session is over too
    async with ApiClient(ui_server.url) as api:
        api.token = token
        try:
            await api.me()
        except Exception as exc:
            assert getattr(exc, "code", None) == "UNAUTHENTICATED"
        else:
            raise AssertionError("the session survived the escape")


# ---------------------------------------------------------------------------- wrong input
async def test_wrong_password_shows_attempts_left_then_locked_until(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await log_in(pilot, ui_server, CHEN[0], "Wrong2026pass")
        assert isinstance(app.screen, LoginScreen)
        assert message(app) == "学号或密码不正确，还可尝试 4 次"
        for left in (3, 2, 1):
            await retry_password(pilot, ui_server, "Wrong2026pass")
            assert message(app) == f"学号或密码不正确，还可尝试 {left} 次"
        await retry_password(pilot, ui_server, "Wrong2026pass")
        # locked for 15 minutes from 10:00 school time
        assert "账号锁定至 10:15" in message(app)
        assert app.session is None
        # the right password now is refused too, with the same time
        await retry_password(pilot, ui_server, CHEN[1])
        assert isinstance(app.screen, LoginScreen)
        assert "10:15" in message(app)


async def test_wrong_captcha_says_so_and_shows_a_new_one(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        screen = app.screen
        first = screen.captcha_id
        wrong = "Q" + latest_captcha_answer(ui_server) + "Q"  # never the answer
        await pilot.press(*CHEN[0], "tab")
        await pilot.press(*CHEN[1], "tab", *wrong, "enter")
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert message(app) == "验证码错误或已过期，已换一张"
        assert screen.captcha_id not in (None, first)
        assert screen.query_one("#captcha", Input).value == ""
        assert focused_id(app) == "captcha"
        # a wrong captcha costs no attempt: the next right login works
        await pilot.press(*latest_captcha_answer(ui_server), "enter")
        await settle(pilot)
        assert isinstance(app.screen, MenuScreen)


# ---------------------------------------------------------------------------- reset
async def test_full_reset_through_the_ui_then_login_with_the_new_password(
    make_ui_app, ui_server, clock
):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await pilot.press(*ZHANG[0], "tab", "tab", "tab", "tab")
        assert focused_id(app) == "forgot"
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ResetPasswordScreen)
        assert screen.query_one("#username", Input).value == ZHANG[0]
        assert focused_id(app) == "name"
        assert plain(screen.query_one("#step", Tr).render()) == "第一步：核对身份"
        assert label_before(app, "name") == "姓名"
        assert label_before(app, "id_card") == "身份证号"
        assert label_before(app, "captcha") == "验证码"

        await pilot.press(*"张伟", "enter")
        assert focused_id(app) == "id_card"
        await pilot.press(*ZHANG_ID_CARD, "enter")
        assert focused_id(app) == "captcha"
        await pilot.press(*latest_captcha_answer(ui_server), "enter")
        await settle(pilot)

        # step 2: the masked contacts; choose 短信
        assert plain(screen.query_one("#step", Tr).render()) == "第二步：获取验证码"
        radios = screen.query_one(RadioSet)
        buttons = list(radios.query(RadioButton))
        assert [plain(b.label) for b in buttons] == ["短信 138****0001", "邮箱 z***@example.edu.cn"]
        assert focused_id(app) == "channel"
        await pilot.press("enter")  # the highlight starts on the pre-selected 短信
        assert [b.value for b in buttons] == [True, False]
        assert outbox_codes(ui_server, "13800000001") == []
        await pilot.press("tab")
        assert focused_id(app) == "send"
        assert plain(screen.query_one("#send", TrButton).label) == "获取验证码"
        await pilot.press("enter")
        await settle(pilot)

        # the code went by SMS (outbox, both in-process and over the dev hook)
        codes = outbox_codes(ui_server, "13800000001")
        assert len(codes) == 1
        async with ApiClient(ui_server.url) as api:
            outbox = await api.outbox()
        assert [m.channel for m in outbox.messages if m.to == "13800000001"] == ["sms"]
        assert outbox_codes(ui_server, "zhangwei@example.edu.cn") == []

        # step 3 with the countdown
        assert plain(screen.query_one("#step", Tr).render()) == "第三步：设置新密码"
        assert message(app) == "验证码已发送至 138****0001"
        resend = screen.query_one("#resend", TrButton)
        assert str(resend.label) == "60 秒后可重新获取"
        assert resend.disabled
        clock.advance(15)
        await until(pilot, lambda: str(resend.label) == "45 秒后可重新获取", "the count, 1 s on")
        assert focused_id(app) == "code"

        await pilot.press(*codes[0], "enter")
        assert focused_id(app) == "new"
        await pilot.press(*NEW_ZHANG, "enter")
        assert focused_id(app) == "confirm"
        await pilot.press(*NEW_ZHANG, "enter")
        await settle(pilot)

        # back on login: number filled, the done notice, focus in 密码
        assert isinstance(app.screen, LoginScreen)
        assert app.screen.query_one("#username", Input).value == ZHANG[0]
        assert message(app) == "密码已重置，请用新密码登录"
        assert focused_id(app) == "password"
        await pilot.press(*NEW_ZHANG, "tab", *latest_captcha_answer(ui_server), "enter")
        await settle(pilot)
        assert isinstance(app.screen, MenuScreen)  # no forced change after a reset
        assert app.user == (ZHANG[0], "张伟")


async def test_reset_choosing_email_by_keyboard_sends_the_code_by_email(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await pilot.press(*ZHANG[0], "tab", "tab", "tab", "tab", "enter")
        await settle(pilot)
        await pilot.press(*"张伟", "enter", *ZHANG_ID_CARD, "enter")
        await pilot.press(*latest_captcha_answer(ui_server), "enter")
        await settle(pilot)
        buttons = list(app.screen.query(RadioButton))
        assert [b.value for b in buttons] == [True, False]  # 短信 comes pre-selected
        assert focused_id(app) == "channel"
        await pilot.press("down", "enter")  # to the second line, 邮箱, and pick it
        assert [b.value for b in buttons] == [False, True]  # one choice at a time
        await pilot.press("tab", "enter")  # 获取验证码
        await settle(pilot)
        assert len(outbox_codes(ui_server, "zhangwei@example.edu.cn")) == 1
        assert outbox_codes(ui_server, "13800000001") == []
        assert message(app) == "验证码已发送至 z***@example.edu.cn"


async def test_reset_without_contact_says_go_to_the_helpdesk(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await pilot.press("tab", "tab", "tab", "tab", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ResetPasswordScreen)
        assert focused_id(app) == "username"
        await pilot.press(*LI[0], "enter", *"李娜", "enter", *LI_ID_CARD, "enter")
        await pilot.press(*latest_captcha_answer(ui_server), "enter")
        await settle(pilot)
        assert "请到服务台重置密码" in message(app)
        assert not app.screen.query_one(RadioSet).display
        assert not app.screen.query_one("#send", TrButton).display
        assert outbox_codes(ui_server, "1380000") == []


# ---------------------------------------------------------------------------- menu
async def test_menu_keys_profile_password_and_logout(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await log_in(pilot, ui_server, *CHEN)
        assert isinstance(app.screen, MenuScreen)
        assert "陈静（2024010004）" in header(app)

        await pilot.press("3")
        await settle(pilot)
        assert isinstance(app.screen, ProfileScreen)
        assert title(app) == "个人信息"
        assert plain(app.screen.query_one("#show-username", Static).render()) == CHEN[0]
        await pilot.press("escape")
        assert isinstance(app.screen, MenuScreen)

        await pilot.press("4")
        await settle(pilot)
        assert isinstance(app.screen, ChangePasswordScreen)
        assert label_before(app, "old") == "原密码"
        assert [i.id for i in app.screen.query(Input)] == ["old", "new", "confirm"]
        assert focused_id(app) == "old"
        await pilot.press("escape")
        assert isinstance(app.screen, MenuScreen)

        token = app.api.token
        await pilot.press("5")
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert len(app.screen_stack) == 2
        assert app.screen.query_one("#username", Input).value == ""
        assert app.screen.query_one("#password", Input).value == ""
        assert focused_id(app) == "username"
        assert app.session is None and app.user is None and app.api.token is None
        assert message(app) == "已退出登录"
        assert "陈静" not in header(app)
        assert everything_holding(app, CHEN[1]) == []
    async with ApiClient(ui_server.url) as api:
        api.token = token
        try:
            await api.me()
        except Exception as exc:
            assert getattr(exc, "code", None) == "UNAUTHENTICATED"
        else:
            raise AssertionError("logout left the backend session alive")


# ---------------------------------------------------------------------------- profile
async def on_profile(pilot, ui_server, who: tuple[str, str]) -> ProfileScreen:
    """Log ``who`` in and open 个人信息 from the menu."""
    await start(pilot)
    await log_in(pilot, ui_server, *who)
    assert isinstance(pilot.app.screen, MenuScreen)
    await pilot.press("3")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ProfileScreen)
    return pilot.app.screen


@pytest.mark.parametrize(
    "digits", ["１３９０００００００２", "139٠٠٠٠٠٠٠٢"], ids=["fullwidth", "arabic"]
)
async def test_profile_live_check_takes_ascii_digits_only(make_ui_app, ui_server, digits):
    """The same rule as the backend's (api/rules.py): other digits are not a phone."""
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await on_profile(pilot, ui_server, LI)
        phone_problem = screen.query_one("#phone-problem", Tr)
        await pilot.press("end", *["backspace"] * 7, *digits)
        assert screen.query_one("#phone", Input).value == digits
        assert plain(phone_problem.render()) == "手机号有误：11位，以13-19开头"
        await pilot.press(*["backspace"] * 11, *"13900000002")
        assert plain(phone_problem.render()) == "✓"


async def test_profile_fix_needs_the_password_then_saves(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await on_profile(pilot, ui_server, LI)
        phone_problem = screen.query_one("#phone-problem", Tr)
        email_problem = screen.query_one("#email-problem", Tr)
        assert plain(phone_problem.render()) == "手机号有误：11位，以13-19开头"
        assert plain(email_problem.render()) == "请填写邮箱"
        assert phone_problem.parent is screen.query_one("#phone", Input).parent
        assert email_problem.parent is screen.query_one("#email", Input).parent
        assert plain(screen.query_one("#show-name", Static).render()) == "李娜"
        id_card = plain(screen.query_one("#show-id_card", Static).render())
        assert id_card.startswith("320") and "3429" not in id_card

        assert focused_id(app) == "phone"
        assert screen.query_one("#phone", Input).value == "1380000"
        await pilot.press("end", *["backspace"] * 7, *"13900000002", "tab")
        assert focused_id(app) == "email"
        await pilot.press(*"lina@example.edu.cn", "enter")
        assert focused_id(app) == "current"
        await pilot.press("enter")  # save without the password
        await settle(pilot)
        assert message(app) == "修改联系方式需要输入当前密码"
        assert focused_id(app) == "current"

        await pilot.press(*LI[1], "enter")
        await settle(pilot)
        assert message(app) == "个人信息已保存"
        assert plain(phone_problem.render()) == "✓"
        assert plain(email_problem.render()) == "✓"
        assert screen.query_one("#current", Input).value == ""

    async with ApiClient(ui_server.url) as api:
        await solve_login(api, *LI)
        me = await api.me()
    assert (me.phone, me.email, me.profile_problems) == (
        "13900000002",
        "lina@example.edu.cn",
        [],
    )


# ---------------------------------------------------------------------------- session end
async def test_session_ended_by_the_backend_returns_to_login_saying_so(
    make_ui_app, ui_server, clock
):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await log_in(pilot, ui_server, *CHEN)
        assert isinstance(app.screen, MenuScreen)
        clock.advance(31 * 60)
        await pilot.press("3")
        await settle(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert message(app) == "登录已过期，请重新登录"
        assert app.session is None and app.user is None and app.api.token is None
        assert len(app.screen_stack) == 2


# ---------------------------------------------------------------------------- no backend
@pytest.mark.parametrize("key", ["tab", "2"], ids=["tab", "a digit typed into the student number"])
async def test_unreachable_backend_says_busy_then_retries_on_a_key(clock, monkeypatch, key):
    from epay_tui.app import make_app
    from epay_tui.screens import base

    # a long automatic back-off: only the key can make the retry happen in this test
    monkeypatch.setattr(base, "RETRY_DELAYS", (300,))
    port = free_port()
    app = make_app(Settings(server=f"http://127.0.0.1:{port}", timeout=2), None, clock)
    backend: BackgroundServer | None = None
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "网络繁忙" in message(app), "网络繁忙")
            assert message(app).startswith("网络繁忙")
            assert isinstance(app.screen, LoginScreen)
            assert not app.screen.query_one(CaptchaImage).has_image
            text = screen_text(app)
            assert "Traceback" not in text and "Error" not in text
            assert app.return_code is None  # still running

            backend = BackgroundServer(
                ServerConfig(port=port, demo_data=True, dev_hooks=True), clock
            ).start()
            await pilot.press(key)  # "any key retries now"
            await until(pilot, lambda: app.screen.captcha_id is not None, "a captcha", timeout=5)
            await settle(pilot)
            assert app.screen.query_one(CaptchaImage).has_image
            assert message(app) == ""
            assert "缴费开放时间" in screen_text(app)
    finally:
        if backend is not None:
            backend.stop()


IMPORT_PROBE = """
import asyncio, sys
from epay_tui.config import Settings
from epay_tui.app import make_app
import epay_tui.cli

async def main():
    app = make_app(Settings(server=SERVER))
    async with app.run_test() as pilot:
        await app.api_client()
        await pilot.pause()
        assert app.api is not None

asyncio.run(main())
print("LOADED", sorted(m for m in sys.modules if m.startswith("epay_tui.server")))
"""


def run_import_probe(server: str | None) -> str:
    script = IMPORT_PROBE.replace("SERVER", repr(server))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_server_flag_leaves_the_server_package_unimported():
    assert "LOADED []" in run_import_probe("http://127.0.0.1:9")


def test_the_import_probe_sees_the_server_package_of_the_embedded_backend():
    """Without a server the embedded backend starts: the probe must notice it."""
    out = run_import_probe(None)
    assert "'epay_tui.server.runner'" in out, out
