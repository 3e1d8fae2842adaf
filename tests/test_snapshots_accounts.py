"""Snapshots of the account screens (login, 修改密码, 忘记密码, menu, 个人信息, help), zh and en.

Every shot is 80x24 and deterministic: the backend's captchas repeat from a seed, the
clock is a ManualClock (the resend countdown and the lock time come from it), workers
are waited for and the input cursor is held still before the shot.
"""

from __future__ import annotations

import re
import socket

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from epay_tui.api.client import ApiClient
from epay_tui.app import make_app
from epay_tui.config import Settings
from tests.conftest import LI, WANG, ZHANG, latest_captcha_answer
from tests.pilot_helpers import fill, settle_workers, snapshot

LANGS = pytest.mark.parametrize("lang", ["zh", "en"])
SIZE = (80, 24)

ZHANG_NAME, ZHANG_ID_CARD = "张伟", "320402200603152018"
LI_NAME, LI_ID_CARD = "李娜", "320411200511083429"
NEW_PASSWORD = "Zhangwei2026x"


# ----------------------------------------------------------------------------- helpers
async def type_text(pilot: Pilot, text: str) -> None:
    await pilot.press(*text)


async def submit_login(pilot: Pilot, server, username: str, password: str) -> None:
    """From a fresh login screen: 学号, 密码, 验证码 (the answer just issued), enter."""
    await settle_workers(pilot)
    answer = latest_captcha_answer(server)
    await fill(pilot, username=username, password=password, captcha=answer)
    await pilot.press("enter")
    await settle_workers(pilot)


async def retry_login(pilot: Pilot, server, password: str) -> None:
    """After a refused attempt focus is in 密码 and a new captcha is shown: try again."""
    await settle_workers(pilot)
    await fill(pilot, password=password, captcha=latest_captcha_answer(server))
    await pilot.press("enter")
    await settle_workers(pilot)


async def zhang_forced(pilot: Pilot, server) -> None:
    """ZHANG logs in with the initial password: the forced 修改密码 screen."""
    await submit_login(pilot, server, *ZHANG)
    assert type(pilot.app.screen).__name__ == "ChangePasswordScreen"


async def zhang_changed(pilot: Pilot, server) -> None:
    """ZHANG logs in and replaces the initial password: the menu."""
    await zhang_forced(pilot, server)
    await fill(pilot, new=NEW_PASSWORD, confirm=NEW_PASSWORD)
    await pilot.press("enter")
    await settle_workers(pilot)
    assert type(pilot.app.screen).__name__ == "MenuScreen"


async def li_menu(pilot: Pilot, server) -> None:
    await submit_login(pilot, server, *LI)
    assert type(pilot.app.screen).__name__ == "MenuScreen"


async def open_reset(pilot: Pilot) -> None:
    """From the login screen: tab through 学号 → 密码 → 验证码 → 登录 → 忘记密码, enter."""
    await settle_workers(pilot)
    await pilot.press("tab", "tab", "tab", "tab", "enter")
    await settle_workers(pilot)
    assert type(pilot.app.screen).__name__ == "ResetPasswordScreen"


async def reset_identity(pilot: Pilot, server, username: str, name: str, id_card: str) -> None:
    """Step 1 filled in and submitted with the captcha's answer."""
    await open_reset(pilot)
    answer = latest_captcha_answer(server)
    await fill(pilot, username=username, name=name, id_card=id_card, captcha=answer)
    await pilot.press("enter")
    await settle_workers(pilot)


async def reset_sent(pilot: Pilot, server) -> None:
    """ZHANG through step 2: 短信 chosen, 获取验证码 pressed, step 3 with the countdown."""
    await reset_identity(pilot, server, ZHANG[0], ZHANG_NAME, ZHANG_ID_CARD)
    await pilot.press("tab", "enter")
    await settle_workers(pilot)


def last_code(server) -> str:
    """The code in the last SMS or e-mail the backend sent."""
    with server.backend.store.read() as conn:
        body = conn.execute("SELECT body FROM outbox ORDER BY id DESC LIMIT 1").fetchone()["body"]
    match = re.search(r"\d{6}", body)
    assert match, body
    return match.group()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: bind a free port, then let it go."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def shot(snap_compare, app, run_before) -> bool:
    return snapshot(snap_compare, app, run_before, SIZE)


# ----------------------------------------------------------------------------- login
@LANGS
def test_login_empty(snap_compare, make_ui_app, ui_server, lang):
    """Focus in 学号; the seeded captcha drawn; hint, hours and payee shown."""

    async def run_before(pilot):
        await settle_workers(pilot)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_login_missing_fields(snap_compare, make_ui_app, ui_server, lang):
    """Only 学号 typed, enter in 验证码: 请填写学号、密码和验证码, focus back in 密码."""

    async def run_before(pilot):
        await settle_workers(pilot)
        await type_text(pilot, ZHANG[0])
        await pilot.press("tab", "tab", "enter")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_login_wrong_password(snap_compare, make_ui_app, ui_server, lang):
    """A wrong password: attempts left, a new captcha, focus in 密码."""

    async def run_before(pilot):
        await submit_login(pilot, ui_server, ZHANG[0], "Wrong2026pw")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_login_captcha_wrong(snap_compare, make_ui_app, ui_server, lang):
    """A wrong captcha: said in words, a new one drawn, focus in 验证码."""

    async def run_before(pilot):
        await settle_workers(pilot)
        await type_text(pilot, ZHANG[0])
        await pilot.press("tab")
        await type_text(pilot, ZHANG[1])
        await pilot.press("tab")
        await type_text(pilot, latest_captcha_answer(ui_server) + "9")
        await pilot.press("enter")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_login_locked(snap_compare, make_ui_app, ui_server, lang):
    """Five wrong passwords, each with a fresh captcha: locked until 10:15 (school time)."""

    async def run_before(pilot):
        await submit_login(pilot, ui_server, ZHANG[0], "Wrong2026pw")
        for _ in range(4):
            await retry_login(pilot, ui_server, "Wrong2026pw")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_login_backend_unreachable(snap_compare, clock, lang, monkeypatch):
    """No backend: 网络繁忙 on the message line, retrying by itself, no traceback."""
    from epay_tui.screens import base

    monkeypatch.setattr(base, "RETRY_DELAYS", (30,))  # the words must not move
    url = closed_port_url()
    app = make_app(Settings(server=url, lang=lang), ApiClient(url), clock)

    async def run_before(pilot):
        # The loading worker keeps retrying, so it never completes: wait for the words.
        for _ in range(200):
            await pilot.pause(0.01)
            if pilot.app.screen.message.key == "app.busy_retrying":
                break
        await pilot.pause()

    async def run(pilot):
        await run_before(pilot)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run)


# ----------------------------------------------------------------------------- 修改密码
@LANGS
def test_forced_change_initial_empty(snap_compare, make_ui_app, ui_server, lang):
    """After the initial password: only 新密码 / 确认新密码, focus in 新密码, checklist blank."""

    async def run_before(pilot):
        await zhang_forced(pilot, ui_server)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_forced_change_checklist_partly_ticked(snap_compare, make_ui_app, ui_server, lang):
    """Typed "abc": 含字母 and others ticked, 8-32位 and 含数字 crossed."""

    async def run_before(pilot):
        await zhang_forced(pilot, ui_server)
        await type_text(pilot, "abc")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_forced_change_refused(snap_compare, make_ui_app, ui_server, lang):
    """A refused submit names the failed items and puts focus back in 新密码."""

    async def run_before(pilot):
        await zhang_forced(pilot, ui_server)
        await type_text(pilot, "abc")
        await pilot.press("tab")
        await type_text(pilot, "abc")
        await pilot.press("enter")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_forced_change_mismatch(snap_compare, make_ui_app, ui_server, lang):
    """Two different good passwords: 两次输入的新密码不一致, 确认新密码 emptied and focused."""

    async def run_before(pilot):
        await zhang_forced(pilot, ui_server)
        await type_text(pilot, NEW_PASSWORD)
        await pilot.press("tab")
        await type_text(pilot, NEW_PASSWORD + "y")
        await pilot.press("enter")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_forced_change_weak(snap_compare, make_ui_app, ui_server, lang):
    """WANG's 123456 is weak: the 当前密码强度不足 notice."""

    async def run_before(pilot):
        await submit_login(pilot, ui_server, *WANG)
        assert type(pilot.app.screen).__name__ == "ChangePasswordScreen"

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


# ----------------------------------------------------------------------------- menu
@LANGS
def test_menu_after_login(snap_compare, make_ui_app, ui_server, lang):
    """LI logs in straight to the menu: name and number in the header, 1-5 entries."""

    async def run_before(pilot):
        await li_menu(pilot, ui_server)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_menu_after_forced_change(snap_compare, make_ui_app, ui_server, lang):
    """ZHANG replaced the initial password: the menu, with the 密码已修改 toast."""

    async def run_before(pilot):
        await zhang_changed(pilot, ui_server)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


# ----------------------------------------------------------------------------- 忘记密码
@LANGS
def test_reset_step1_empty(snap_compare, make_ui_app, ui_server, lang):
    """Step 1: 学号, 姓名, 身份证号, 验证码 with a captcha; focus in 学号."""

    async def run_before(pilot):
        await open_reset(pilot)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_reset_identity_mismatch(snap_compare, make_ui_app, ui_server, lang):
    """A wrong 身份证号: 学号、姓名或身份证号不匹配, a new captcha, focus in 验证码."""

    async def run_before(pilot):
        await reset_identity(pilot, ui_server, ZHANG[0], ZHANG_NAME, "320402200603152019")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_reset_step2_channels(snap_compare, make_ui_app, ui_server, lang):
    """ZHANG's identity matches: 短信 and 邮箱 with masked contacts, 获取验证码."""

    async def run_before(pilot):
        await reset_identity(pilot, ui_server, ZHANG[0], ZHANG_NAME, ZHANG_ID_CARD)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_reset_no_contact_helpdesk(snap_compare, make_ui_app, ui_server, lang):
    """LI has no valid phone and no e-mail: 请到服务台重置密码."""

    async def run_before(pilot):
        await reset_identity(pilot, ui_server, LI[0], LI_NAME, LI_ID_CARD)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_reset_step3_code_sent(snap_compare, make_ui_app, ui_server, lang):
    """Code sent by SMS: step 3, focus in 验证码, the resend countdown at 60 s."""

    async def run_before(pilot):
        await reset_sent(pilot, ui_server)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_reset_wrong_code(snap_compare, make_ui_app, ui_server, lang):
    """A wrong code with a good new password: 验证码不正确, the code emptied and focused."""

    async def run_before(pilot):
        await reset_sent(pilot, ui_server)
        wrong = "000000" if last_code(ui_server) != "000000" else "111111"
        await type_text(pilot, wrong)
        await pilot.press("tab")
        await type_text(pilot, NEW_PASSWORD)
        await pilot.press("tab")
        await type_text(pilot, NEW_PASSWORD)
        await pilot.press("enter")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


# ----------------------------------------------------------------------------- 个人信息
@LANGS
def test_profile_zhang(snap_compare, make_ui_app, ui_server, lang):
    """ZHANG (after the forced change): identity, phone and e-mail both ✓."""

    async def run_before(pilot):
        await zhang_changed(pilot, ui_server)
        await pilot.press("3")
        await settle_workers(pilot)
        pilot.app.clear_notifications()  # the 密码已修改 toast belongs to the menu shot

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_profile_li_problems(snap_compare, make_ui_app, ui_server, lang):
    """LI: the phone problem beside 手机号, the missing e-mail beside 邮箱."""

    async def run_before(pilot):
        await li_menu(pilot, ui_server)
        await pilot.press("3")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


async def li_fix_contacts(pilot: Pilot, server) -> None:
    """LI corrects 手机号 and fills in 邮箱; focus ends in 当前密码."""
    await li_menu(pilot, server)
    await pilot.press("3")
    await settle_workers(pilot)
    await fill(pilot, phone="13800000002", email="lina@example.edu.cn")
    await pilot.press("enter")


@LANGS
def test_profile_li_save_refused_without_password(snap_compare, make_ui_app, ui_server, lang):
    """Good contacts but no 当前密码: 修改联系方式需要输入当前密码, focus in 当前密码."""

    async def run_before(pilot):
        await li_fix_contacts(pilot, ui_server)
        await pilot.press("enter")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_profile_li_saved(snap_compare, make_ui_app, ui_server, lang):
    """Saved with the current password: 个人信息已保存, both fields ✓."""

    async def run_before(pilot):
        await li_fix_contacts(pilot, ui_server)
        await fill(pilot, current=LI[1])
        await pilot.press("enter")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


# ----------------------------------------------------------------------------- help
@LANGS
def test_help_on_login(snap_compare, make_ui_app, ui_server, lang):
    """F1 on the login screen: the login help in a modal over the form."""

    async def run_before(pilot):
        await settle_workers(pilot)
        await pilot.press("f1")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_help_on_menu(snap_compare, make_ui_app, ui_server, lang):
    """F1 on the menu: the menu help."""

    async def run_before(pilot):
        await li_menu(pilot, ui_server)
        await pilot.press("f1")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)
