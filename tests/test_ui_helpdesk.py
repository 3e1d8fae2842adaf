"""Helpdesk mode (``--helpdesk``) driven from the keyboard against the live backend.

Staff login (账号 → 密码 → 验证码, remember me in the keyring or nowhere), the student
search, the student's page with 重置密码 (F3), 解除锁定 (F4) and 查询支付结果 (F7), 对账 (F5),
审计日志 (F6), logout (F9), and the backend's 403 for a student's token.

Waits are bounded loops on a condition, 0.05 s at a time; the backend's clock is the
ManualClock of conftest (10:00 school time), moved only by the tests.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError
from textual.widgets import Checkbox, DataTable, Input

from epay_tui.api import errors
from epay_tui.api.client import ApiClient, new_idempotency_key
from epay_tui.app import make_app
from epay_tui.config import Settings
from epay_tui.flow.remember import KEYRING_SERVICE
from epay_tui.screens.audit import AuditScreen
from epay_tui.screens.dialog import Choice
from epay_tui.screens.helpdesk_home import HelpdeskHome
from epay_tui.screens.reconcile import ReconcileScreen
from epay_tui.screens.staff_login import StaffLoginScreen
from epay_tui.screens.student_page import StudentPage
from epay_tui.server.runner import BackgroundServer
from epay_tui.widgets.texts import Tr
from tests.conftest import CHEN, SCHOOL_TZ, STAFF, WANG, ZHANG, solve_captcha, solve_login
from tests.helpdesk_flows import (
    confirm,
    line,
    message_key,
    notices,
    open_student,
    result_shown,
    rows,
    search,
    staff_form,
    staff_home,
    submit_staff_login,
)
from tests.pilot_helpers import answer_for, until

WANG_INITIAL = "221573Czgc"  # last six of 320481200607221573 + Czgc
TODAY = "2026-11-26"  # the ManualClock's school day


# ---------------------------------------------------------------------------- keyring
class MemoryKeyring(KeyringBackend):
    """A keyring that keeps its secrets in a dict, for one test."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.secrets.pop((service, username), None) is None:
            raise PasswordDeleteError(f"no {service}/{username}")


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(previous)


async def dropped_notify_payment(server: BackgroundServer, code: str) -> str:
    """CHEN orders one of his unpaid fees and pays it; the gateway's notify is lost.

    Returns the order number; the backend still has the order open.
    """
    async with ApiClient(server.url) as chen:
        await solve_login(chen, *CHEN)
        items = [i for tag in (await chen.fees()).tags for i in tag.items]
        item = next(i for i in items if i.id.endswith(f"-{code}"))
        assert item.state == "unpaid", item
        order = await chen.create_order([item.id], new_idempotency_key())
        qr = await chen.pay_order(order.order_no, "wechat")
        async with ApiClient(server.url) as phone:
            paid = await phone.sandbox_pay(qr.qr_url, "success", notify="drop")
        assert paid.trade_state == "SUCCESS"
        assert (await chen.get_order(order.order_no)).status == "open"  # nobody told it
        return order.order_no


async def backend_status(server: BackgroundServer, order_no: str) -> str:
    async with ApiClient(server.url) as chen:
        await solve_login(chen, *CHEN)
        return (await chen.get_order(order_no)).status


async def login_result(server: BackgroundServer, username: str, password: str):
    async with ApiClient(server.url) as api:
        return await solve_login(api, username, password)


# ============================================================================ staff login
async def test_staff_login_fields_in_order_then_focus_in_search(make_ui_app, ui_server):
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await staff_form(pilot)
        labels = [str(w.render()) for w in screen.query(".field > .label")]
        assert labels == ["账号", "密码", "验证码"]
        assert str(screen.query_one(".screen-title", Tr).render()) == "服务台登录"
        order = [getattr(app.focused, "id", None)]
        for _ in range(4):
            await pilot.press("tab")
            order.append(getattr(app.focused, "id", None))
        assert order == ["username", "password", "captcha", "remember", "login"]
        for _ in range(4):
            await pilot.press("shift+tab")
        assert app.focused is screen.query_one("#username", Input)

        answer = answer_for(ui_server, screen.captcha_id)
        await pilot.press(*STAFF[0], "tab", *STAFF[1], "tab", *answer, "enter")
        await until(pilot, lambda: isinstance(app.screen, HelpdeskHome), "服务台")
        home = app.screen
        await until(pilot, lambda: app.focused is home.query_one("#search", Input), "search")
        assert str(home.query_one(".screen-title", Tr).render()) == "服务台"
        assert str(home.query_one(".field > .label", Tr).render()) == "学号或姓名"
        assert app.user == ("helpdesk01", "服务台")
        assert app.session is not None and app.session.role == "staff"
        assert app.api is not None and app.api.token is not None


async def test_a_student_account_cannot_open_the_helpdesk(make_ui_app, ui_server, memory_keyring):
    app = make_ui_app(helpdesk=True)
    issued: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        api = app.api
        assert api is not None
        real_login = api.login

        async def spying_login(*args, **kwargs):
            result = await real_login(*args, **kwargs)
            issued.append(result.token)
            return result

        api.login = spying_login  # type: ignore[method-assign]
        await submit_staff_login(pilot, ui_server, CHEN, remember=True)
        await until(pilot, lambda: message_key(app) == "staff.not_staff", "the not-staff words")
        assert "此账号不是服务台账号" in line(app, "message")
        assert isinstance(app.screen, StaffLoginScreen)
        assert len(app.screen_stack) == 2
        assert app.session is None and app.user is None
        assert api.token is None
        assert issued, "the backend was asked"
        assert memory_keyring.secrets == {}
        await until(pilot, lambda: app.screen.captcha_id is not None, "a fresh captcha")
    # the session the backend opened for the student was ended, not just forgotten
    async with ApiClient(ui_server.url) as stranger:
        stranger.token = issued[0]
        with pytest.raises(errors.Unauthenticated):
            await stranger.me()


async def test_remember_me_keeps_the_login_in_the_keyring_until_logout(
    make_ui_app, ui_server, memory_keyring
):
    first = make_ui_app(helpdesk=True)
    async with first.run_test(size=(80, 24), notifications=True) as pilot:
        await staff_home(pilot, ui_server, remember=True)
        await until(pilot, lambda: bool(memory_keyring.secrets), "the token in the keyring")
        token = first.api.token
        assert token
        assert memory_keyring.secrets == {(KEYRING_SERVICE, ui_server.url): token}
        await until(pilot, lambda: "已记住登录（系统钥匙串）" in notices(first), "the notice")

    second = make_ui_app(helpdesk=True)
    async with second.run_test(size=(80, 24)) as pilot:
        # nothing typed: the remembered login opens 服务台 by itself
        await until(pilot, lambda: isinstance(second.screen, HelpdeskHome), "服务台 by itself")
        assert second.api.token == token
        assert second.user == ("helpdesk01", "服务台")
        await until(
            pilot,
            lambda: getattr(second.focused, "id", None) == "search",
            "focus in search",
        )
        table = await search(pilot, "2024")
        assert table.row_count == 4  # the remembered token works for staff calls

        await pilot.press("f9")
        await until(pilot, lambda: isinstance(second.screen, StaffLoginScreen), "logged out")
        await until(pilot, lambda: message_key(second) == "menu.logged_out", "已退出登录")
        assert memory_keyring.secrets == {}
        assert second.api.token is None and second.session is None

    async with ApiClient(ui_server.url) as stranger:
        stranger.token = token
        with pytest.raises(errors.Unauthenticated):
            await stranger.me()

    third = make_ui_app(helpdesk=True)
    async with third.run_test(size=(80, 24)) as pilot:
        await staff_form(pilot)  # the form again: nothing remembered any more
        assert isinstance(third.screen, StaffLoginScreen) and third.api.token is None


async def test_without_a_secure_keyring_nothing_is_remembered(make_ui_app, ui_server, tmp_path):
    assert type(keyring.get_keyring()).__module__ == "keyring.backends.fail"
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await staff_home(pilot, ui_server, remember=True)
        await until(
            pilot,
            lambda: "本机没有安全的钥匙串，无法记住登录：仅在本次运行中有效" in notices(app),
            "the cannot-remember notice",
        )
        token = app.api.token
        assert token
    written = [p for p in Path(tmp_path).rglob("*") if p.is_file()]
    assert not [p for p in written if token.encode() in p.read_bytes()], written

    again = make_ui_app(helpdesk=True)
    async with again.run_test(size=(80, 24)) as pilot:
        await staff_form(pilot)
        assert again.api.token is None


async def test_remember_checkbox_starts_unchecked(make_ui_app, ui_server, memory_keyring):
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await staff_form(pilot)
        assert screen.query_one("#remember", Checkbox).value is False
        await staff_home(pilot, ui_server)
        await pilot.pause()
        assert memory_keyring.secrets == {}


# ============================================================================ search
async def test_search_by_number_and_by_name_opens_the_student(make_ui_app, ui_server):
    order_no = await dropped_notify_payment(ui_server, "textbook")
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await staff_home(pilot, ui_server)

        table = await search(pilot, "2024")
        assert [r[:2] for r in rows(table)] == [
            ["2024010001", "张伟"],
            ["2024010002", "李娜"],
            ["2024010003", "王磊"],
            ["2024010004", "陈静"],
        ]
        table = await search(pilot, "202401000")
        assert table.row_count == 4
        table = await search(pilot, "2024010003")
        assert [r[:2] for r in rows(table)] == [["2024010003", "王磊"]]
        table = await search(pilot, "2025")
        assert table.row_count == 0
        assert "没有找到学生" in line(app, "message")

        table = await search(pilot, "王")
        assert [r[:4] for r in rows(table)] == [["2024010003", "王磊", "智能制造学院", "机电2401"]]
        table = await search(pilot, "陈")
        assert [r[:2] for r in rows(table)] == [["2024010004", "陈静"]]
        await pilot.press("enter")
        await until(
            pilot,
            lambda: isinstance(app.screen, StudentPage) and app.screen.detail is not None,
            "陈静's page",
        )
        page = app.screen
        assert page.username == "2024010004"
        who = line(app, "who")
        assert "陈静（2024010004）" in who and "机电2401" in who
        assert who.endswith("身份证 320**************0")  # the ID card is masked
        assert "手机 13800000004" in line(app, "contacts")
        # tuition and accommodation paid; 教材费 (in the open order), 保险费, 体检费 owed
        assert line(app, "fees-line") == "收费项 5 项，未缴 ¥630.00，支付中 1 项"
        orders = rows(page.query_one("#student-orders", DataTable))
        assert len(orders) == 1
        assert orders[0][:4] == [order_no, "教材费", "¥420.00", "待支付"]
        assert orders[0][4] == "11-26 10:00"

        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HelpdeskHome), "back to 服务台")
        assert rows(app.screen.query_one("#students", DataTable))[0][0] == "2024010004"


# ============================================================================ actions
async def test_f3_resets_the_password_to_the_initial_one(make_ui_app, ui_server):
    async with ApiClient(ui_server.url) as wang:
        await solve_login(wang, *WANG)  # a session on another device, ended by the reset
        app = make_ui_app(helpdesk=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await staff_home(pilot, ui_server)
            page = await open_student(pilot, WANG[0])
            assert "王磊（2024010003）" in line(app, "who")
            assert line(app, "fees-line") == "收费项 5 项，未缴 ¥8,330.00，支付中 0 项"

            await pilot.press("f7")  # no orders: nothing to query
            await until(pilot, lambda: message_key(app) == "staff.no_order", "no order")
            assert not isinstance(app.screen, Choice)

            await pilot.press("f3")
            await until(pilot, lambda: isinstance(app.screen, Choice), "the question")
            await pilot.press("escape")  # 取消: nothing happens
            await until(pilot, lambda: app.screen is page, "back on the page")
            assert page.query_one("#result", Tr).key == ""

            await pilot.press("f3")
            await confirm(pilot, "enter", "将 2024010003 的密码重置为初始密码")
            shown = await result_shown(pilot, "staff.reset_done")
            assert shown == "密码已重置为初始密码，学生下次登录须修改密码"
        with pytest.raises(errors.Unauthenticated):
            await wang.me()

    with pytest.raises(errors.BadCredentials):
        await login_result(ui_server, WANG[0], WANG[1])
    result = await login_result(ui_server, WANG[0], WANG_INITIAL)
    assert result.password_issue == "initial" and result.must_change_password


async def test_f4_unlocks_a_locked_student(make_ui_app, ui_server):
    async with ApiClient(ui_server.url) as device:
        for _ in range(4):
            with pytest.raises(errors.BadCredentials):
                await device.login(ZHANG[0], "Wrong2026pw", *await solve_captcha(device))
        with pytest.raises(errors.AccountLocked):
            await device.login(ZHANG[0], "Wrong2026pw", *await solve_captcha(device))
        with pytest.raises(errors.AccountLocked):  # even the right password now
            await device.login(ZHANG[0], ZHANG[1], *await solve_captcha(device))

    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await staff_home(pilot, ui_server)
        table = await search(pilot, ZHANG[0])
        assert rows(table)[0][4] == "已锁定"
        page = await open_student(pilot, ZHANG[0])
        await pilot.press("f4")
        await confirm(pilot, "enter", "解除 2024010001 的登录锁定？")
        assert await result_shown(pilot, "staff.unlock_done") == "已解除锁定"
        assert app.screen is page
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HelpdeskHome), "服务台")
        table = await search(pilot, ZHANG[0])
        assert rows(table)[0][4] == ""

    result = await login_result(ui_server, *ZHANG)
    assert result.role == "student" and result.password_issue == "initial"


async def test_f7_recovers_a_payment_whose_notify_was_lost(make_ui_app, ui_server):
    order_no = await dropped_notify_payment(ui_server, "insurance")
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await staff_home(pilot, ui_server)
        page = await open_student(pilot, CHEN[0])
        table = page.query_one("#student-orders", DataTable)
        assert app.focused is table
        assert rows(table)[0][0] == order_no and rows(table)[0][3] == "待支付"
        await pilot.press("f7")
        await confirm(pilot, "enter", f"向银行查询订单 {order_no} 的支付结果？")
        assert await result_shown(pilot, "staff.query_done") == f"订单 {order_no}：已支付"
        await until(pilot, lambda: rows(table) and rows(table)[0][3] == "已支付", "已支付 row")
        assert "支付中 0 项" in line(app, "fees-line")
    assert await backend_status(ui_server, order_no) == "paid"


async def test_f7_queries_the_highlighted_order(make_ui_app, ui_server, clock):
    older = await dropped_notify_payment(ui_server, "insurance")
    clock.advance(60)
    newer = await dropped_notify_payment(ui_server, "medical")
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await staff_home(pilot, ui_server)
        page = await open_student(pilot, CHEN[0])
        table = page.query_one("#student-orders", DataTable)
        assert [r[0] for r in rows(table)] == [newer, older]  # newest first
        await pilot.press("down")
        await pilot.press("f7")
        await confirm(pilot, "enter", older)
        assert await result_shown(pilot, "staff.query_done") == f"订单 {older}：已支付"
    assert await backend_status(ui_server, older) == "paid"
    assert await backend_status(ui_server, newer) == "open"


async def test_f5_reconcile_today_recovers_a_lost_notify(make_ui_app, ui_server):
    order_no = await dropped_notify_payment(ui_server, "textbook")
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await staff_home(pilot, ui_server)
        await pilot.press("f5")
        await until(pilot, lambda: isinstance(app.screen, ReconcileScreen), "对账")
        field = app.screen.query_one("#date", Input)
        assert app.focused is field
        assert field.value == TODAY
        await pilot.press("enter")
        await confirm(pilot, "enter", f"对 {TODAY} 的银行流水进行对账？")
        shown = await result_shown(pilot, "staff.reconcile_result", "reconcile-result")
        assert shown.startswith(f"{TODAY}：核对一致 0 笔；补记 {order_no}；"), shown
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HelpdeskHome), "服务台")
    assert await backend_status(ui_server, order_no) == "paid"


async def test_f5_reconcile_another_day_and_a_bad_date(make_ui_app, ui_server):
    order_no = await dropped_notify_payment(ui_server, "textbook")
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await staff_home(pilot, ui_server)
        await pilot.press("f5")
        await until(pilot, lambda: isinstance(app.screen, ReconcileScreen), "对账")
        await pilot.press("end", *["backspace"] * 10, *"26-11-2026", "enter")
        await until(pilot, lambda: message_key(app) == "staff.bad_date", "bad date")
        assert not isinstance(app.screen, Choice)
        await pilot.press("end", *["backspace"] * 10, *"2026-11-25", "enter")
        await confirm(pilot, "enter", "2026-11-25")
        shown = await result_shown(pilot, "staff.reconcile_result", "reconcile-result")
        assert shown == "2026-11-25：核对一致 0 笔；补记 -；释放 -；差异 -"
        # escape on the question leaves the day alone
        await pilot.press("end", *["backspace"] * 10, *TODAY, "enter")
        await until(pilot, lambda: isinstance(app.screen, Choice), "the question")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ReconcileScreen), "back")
    assert await backend_status(ui_server, order_no) == "open"


async def test_f5_date_is_the_school_day_early_in_the_morning(make_ui_app, ui_server, clock):
    """07:00 in the school's zone is still the previous day in UTC (and further west):
    the date offered is the school's."""
    clock.set(datetime(2026, 11, 26, 7, 0, tzinfo=SCHOOL_TZ))
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await staff_home(pilot, ui_server)
        await pilot.press("f5")
        await until(pilot, lambda: isinstance(app.screen, ReconcileScreen), "对账")
        assert app.screen.query_one("#date", Input).value == TODAY


async def test_f6_audit_lists_staff_actions_newest_first(make_ui_app, ui_server, clock):
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await staff_home(pilot, ui_server)
        clock.advance(60)
        await open_student(pilot, WANG[0])
        await pilot.press("f3")
        await confirm(pilot, "enter", WANG[0])
        await result_shown(pilot, "staff.reset_done")
        clock.advance(60)
        await pilot.press("f4")
        await confirm(pilot, "enter", WANG[0])
        await result_shown(pilot, "staff.unlock_done")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HelpdeskHome), "服务台")
        clock.advance(60)
        await pilot.press("f6")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen), "审计日志")
        table = app.screen.query_one("#audit", DataTable)
        await until(pilot, lambda: table.row_count > 0, "audit rows")
        entries = rows(table)
        assert entries[:3] == [
            ["11-26 10:02:00", "helpdesk01", "解除锁定", "2024010003"],
            ["11-26 10:01:00", "helpdesk01", "重置密码", "2024010003"],
            ["11-26 10:00:00", "helpdesk01", "登录", "helpdesk01"],
        ]
        times = [e[0] for e in entries]
        assert times == sorted(times, reverse=True)
        await pilot.press("f2")  # the actions follow the language
        await until(pilot, lambda: rows(table)[0][2] == "Unlocked by staff", "English actions")
        assert [e[2] for e in rows(table)[:3]] == [
            "Unlocked by staff",
            "Staff reset password",
            "Logged in",
        ]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HelpdeskHome), "back")


# ============================================================================ roles
@pytest.mark.parametrize(
    ("lang", "words"), [("zh", "此账号无权使用该功能"), ("en", "This account may not use this")]
)
async def test_a_student_token_gets_403_in_words(make_ui_app, ui_server, lang, words):
    async with ApiClient(ui_server.url) as chen:
        await solve_login(chen, *CHEN)
        with pytest.raises(errors.ForbiddenRole):  # the backend itself refuses
            await chen.staff_students("2024")
        app = make_ui_app(lang=lang, helpdesk=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await staff_home(pilot, ui_server)
            app.api.token = chen.token  # a student's token where a staff one should be
            table = await search(pilot, "2024")
            await until(pilot, lambda: message_key(app) == "error.FORBIDDEN", "403 in words")
            assert words in line(app, "message")
            assert table.row_count == 0
            assert isinstance(app.screen, HelpdeskHome) and app.is_running


async def test_f2_relabels_the_helpdesk_tables(make_ui_app, ui_server):
    app = make_ui_app(helpdesk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await staff_home(pilot, ui_server)
        table = await search(pilot, "2024")
        headers = [str(c.label) for c in table.columns.values()]
        assert headers[:2] == ["学号", "姓名"]
        await pilot.press("f2")
        await until(pilot, lambda: app.language == "en", "English")
        assert str(app.screen.query_one(".field > .label", Tr).render()) == "No. or name"
        headers = [str(c.label) for c in table.columns.values()]
        assert headers[:2] == ["Student No.", "Name"]


# ============================================================================ network
async def test_staff_login_retries_when_the_backend_comes_back(ui_server_config, clock):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"  # nothing listens here yet
    app = make_app(Settings(server=url, helpdesk=True), ApiClient(url), clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "网络繁忙" in line(app, "message"), "网络繁忙")
        with BackgroundServer(replace(ui_server_config, port=port), clock):
            await pilot.press("a")  # the next key retries at once
            await until(
                pilot,
                lambda: app.screen.captcha_id is not None,
                "a captcha once the backend is back",
                timeout=5,
            )
            assert isinstance(app.screen, StaffLoginScreen)
