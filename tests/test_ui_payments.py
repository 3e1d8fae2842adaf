"""Pilot flows of paying: 自助缴费, 确认订单, 扫码支付 and 我的订单 against the live backend.

The sandbox is driven as a phone would (``ApiClient.sandbox_pay`` on the QR's URL);
the backend's state is read in-process. The pay screen follows its order with a long
poll that never ends while the order is open, so waits there are on conditions
(``until``), never on every worker finishing, and never a fixed sleep.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import zxingcpp
from PIL import Image
from rich.console import Console
from textual import events
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, OptionList, RadioSet, Static
from textual.worker import WorkerState

from epay_tui.api.client import ApiClient, new_idempotency_key
from epay_tui.api.rules import parse_payment_hours
from epay_tui.screens.change_password import ChangePasswordScreen
from epay_tui.screens.confirm_order import ConfirmOrderScreen
from epay_tui.screens.dialog import Choice
from epay_tui.screens.fees import FeesScreen
from epay_tui.screens.login import LoginScreen
from epay_tui.screens.menu import MenuScreen
from epay_tui.screens.orders import OrdersScreen
from epay_tui.screens.pay import PayScreen
from epay_tui.screens.profile import ProfileScreen
from epay_tui.server.config import ServerConfig
from epay_tui.server.runner import BackgroundServer
from epay_tui.widgets.qr import QrCode
from epay_tui.widgets.texts import TrButton
from tests.conftest import CAPTCHA_SEED, LI, SCHOOL_TZ, ZHANG, solve_login
from tests.pilot_helpers import answer_for, until

SIZE = (80, 24)
NEW_ZHANG = "Zhangwei2026x"
CURRENT, PREVIOUS = "2026-2027学年", "2025-2026学年"
FISCAL = ("学费", "住宿费")
AGENCY = ("教材费", "保险费", "体检费")
PAYEE = "常州工程职业技术学院"

MIXED = "学费、住宿费的票据类型与其它费用项不同，不能一起支付"
FISCAL_FIRST = "建议先选择学费和住宿费缴费"
CONTINUE_REST = "请继续缴纳其它费用"
DO_NOT_PAY_AGAIN = (
    "请先确认支付软件是否已经扣款，如果确认已经扣款，请不要再次“提交支付”付款，"
    "以免重复缴费。后续财务处会与银行对账，更新支付信息。"
)
IN_PROGRESS = "这笔支付正在处理中，不能取消或更换支付方式"
CLOSED_LINE = "订单已关闭，费用项已释放"
PROFILE_REASON = "手机号、邮箱有误，请维护个人信息后缴费"


def ui_config(**overrides: Any) -> ServerConfig:
    """The conftest's UI backend with some settings changed."""
    settings: dict[str, Any] = {
        "demo_data": True,
        "dev_hooks": True,
        "host": "127.0.0.1",
        "port": 0,
        "payment_hours": parse_payment_hours("08:00-22:00"),
        "tick_seconds": 0.05,
        "captcha_seed": CAPTCHA_SEED,
    }
    settings.update(overrides)
    return ServerConfig(**settings)


# ---------------------------------------------------------------------------- waiting
def busy(app: Any) -> list[str]:
    """Workers still running, but the pay screen's long poll (it never ends while open)."""
    return [
        f"{w.group}:{w.name}"
        for w in app.workers
        if w.state in (WorkerState.PENDING, WorkerState.RUNNING) and w.group != "follow"
    ]


async def settle(pilot: Pilot, what: str = "") -> None:
    """Every worker but the long poll has finished."""
    await until(pilot, lambda: not busy(pilot.app), what=what or "workers settle")
    await pilot.pause()


# ---------------------------------------------------------------------------- reading
def plain(renderable: object, width: int = SIZE[0]) -> str:
    if isinstance(renderable, str):
        return renderable
    text = getattr(renderable, "plain", None)
    if isinstance(text, str):
        return text
    console = Console(width=width, file=io.StringIO(), color_system=None)
    with console.capture() as captured:
        console.print(renderable, end="")
    return captured.get()


def text_of(widget: Widget) -> str:
    if isinstance(widget, Button):
        return plain(widget.label)
    if isinstance(widget, Input):
        return widget.value
    if isinstance(widget, OptionList):
        return "\n".join(
            plain(widget.get_option_at_index(i).prompt) for i in range(widget.option_count)
        )
    if isinstance(widget, DataTable):
        return "\n".join(
            " | ".join(plain(cell) for cell in widget.get_row_at(i))
            for i in range(widget.row_count)
        )
    if isinstance(widget, Static):
        return plain(widget.render())
    return ""


def screen_text(app: Any) -> str:
    """Every word on the active screen, one visible widget per line."""
    widgets = app.screen.walk_children(with_self=False)
    return "\n".join(filter(None, (text_of(w) for w in widgets if w.display)))


def shown(app: Any, selector: str) -> str:
    """The words of one Tr/Static on the active screen."""
    return plain(app.screen.query_one(selector, Static).render())


def title(app: Any) -> str:
    return shown(app, ".screen-title")


def message(app: Any) -> str:
    return shown(app, "#message")


def dialog_text(app: Any) -> str:
    assert isinstance(app.screen, Choice), type(app.screen).__name__
    return shown(app, ".dialog-text")


def dialog_buttons(app: Any) -> list[str]:
    return [plain(b.label) for b in app.screen.query(TrButton)]


# ---------------------------------------------------------------------------- backend
def rows(server: BackgroundServer, sql: str, *args: Any) -> list[dict[str, Any]]:
    with server.backend.store.read() as conn:
        return [dict(r) for r in conn.execute(sql, args).fetchall()]


def orders_of(server: BackgroundServer, username: str) -> list[dict[str, Any]]:
    return rows(server, "SELECT * FROM orders WHERE username=? ORDER BY created_at", username)


def order_row(server: BackgroundServer, order_no: str) -> dict[str, Any]:
    (row,) = rows(server, "SELECT * FROM orders WHERE order_no=?", order_no)
    return row


def order_item_names(server: BackgroundServer, order_no: str) -> list[str]:
    return sorted(
        r["name"] for r in rows(server, "SELECT name FROM order_items WHERE order_no=?", order_no)
    )


def fee_states(server: BackgroundServer, username: str, tag: str = CURRENT) -> dict[str, str]:
    """Name -> ``paid`` / ``in_order`` / ``unpaid`` as the backend has it."""
    items = rows(
        server,
        "SELECT f.name, f.amount_due, f.amount_paid, l.order_no FROM fee_items f"
        " LEFT JOIN item_locks l ON l.item_id = f.id WHERE f.username=? AND f.tag=?",
        username,
        tag,
    )
    return {
        i["name"]: "paid"
        if i["amount_paid"] >= i["amount_due"]
        else "in_order"
        if i["order_no"]
        else "unpaid"
        for i in items
    }


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture
async def phone(ui_server: BackgroundServer) -> AsyncIterator[ApiClient]:
    """The payer's phone: it only opens pay links."""
    async with ApiClient(ui_server.url) as api:
        yield api


@pytest.fixture
async def zhang_changed(ui_server: BackgroundServer) -> str:
    """张伟 has already done the forced change (on another day): his password now."""
    async with ApiClient(ui_server.url) as api:
        await solve_login(api, *ZHANG)
        await api.change_password(ZHANG[1], NEW_ZHANG)
        await api.logout()
    return NEW_ZHANG


@pytest.fixture
async def device(ui_server: BackgroundServer, zhang_changed: str) -> AsyncIterator[ApiClient]:
    """张伟's other device (a phone browser, say), logged in."""
    async with ApiClient(ui_server.url) as api:
        await solve_login(api, ZHANG[0], zhang_changed)
        yield api


# ---------------------------------------------------------------------------- flows
async def log_in(
    pilot: Pilot,
    server: BackgroundServer,
    username: str,
    password: str,
    new_password: str | None = None,
) -> None:
    """From the login screen to the menu (and whatever the menu opens by itself)."""
    app = pilot.app
    await until(
        pilot,
        lambda: isinstance(app.screen, LoginScreen) and app.screen.captcha_id is not None,
        what="login screen with a captcha",
    )
    answer = answer_for(server, app.screen.captcha_id)
    await pilot.press(*username, "tab", *password, "tab", *answer, "enter")
    if new_password is not None:
        await until(pilot, lambda: isinstance(app.screen, ChangePasswordScreen), what="修改密码")
        await pilot.press(*new_password, "tab", *new_password, "enter")
    await until(
        pilot,
        lambda: (
            app.session is not None
            and app.session.looked_for_open_orders
            and not isinstance(app.screen, LoginScreen | ChangePasswordScreen)
            and not busy(app)
        ),
        what="logged in",
    )
    await pilot.pause()


async def open_fees(pilot: Pilot) -> FeesScreen:
    app = pilot.app
    assert isinstance(app.screen, MenuScreen), type(app.screen).__name__
    await pilot.press("1")
    await until(
        pilot,
        lambda: isinstance(app.screen, FeesScreen) and app.screen.fees is not None,
        what="自助缴费 loaded",
    )
    await settle(pilot)
    return app.screen


def fees(app: Any) -> FeesScreen:
    assert isinstance(app.screen, FeesScreen), type(app.screen).__name__
    return app.screen


def key_of(app: Any, name: str, tag: str = CURRENT) -> str:
    screen = fees(app)
    assert screen.fees is not None
    (match,) = [i.id for t in screen.fees.tags if t.tag == tag for i in t.items if i.name == name]
    return match


def row_text(app: Any, key: str) -> list[str]:
    table = fees(app).query_one("#fees", DataTable)
    return [plain(cell) for cell in table.get_row(key)]


def row_of(app: Any, name: str, tag: str = CURRENT) -> dict[str, str]:
    mark, item, receipt, due, paid, outstanding, state = row_text(app, key_of(app, name, tag))
    return {
        "mark": mark,
        "name": item,
        "receipt": receipt,
        "due": due.strip(),
        "paid": paid.strip(),
        "outstanding": outstanding.strip(),
        "state": state,
    }


def cursor_key(app: Any) -> str | None:
    return fees(app)._cursor_key()


def checked(app: Any) -> list[str]:
    """Names checked on screen: in the screen's selection and with a ✓ in the row."""
    screen = fees(app)
    table = screen.query_one("#fees", DataTable)
    marked = sorted(
        screen.items[k.value].name
        for k in table.rows
        if k.value in screen.items and plain(table.get_row(k.value)[0]) == "[✓]"
    )
    selected = sorted(i.name for i in screen.checked.values())
    assert marked == selected, f"marks {marked} but selection {selected}"
    return selected


def total(app: Any) -> str:
    return shown(app, "#total")


async def move_to(pilot: Pilot, key: str) -> None:
    """Move the fees cursor with up/down until it is on row ``key``."""
    app = pilot.app
    table = fees(app).query_one("#fees", DataTable)
    target = table.get_row_index(key)
    for _ in range(table.row_count + 1):
        if cursor_key(app) == key:
            return
        await pilot.press("down" if table.cursor_row < target else "up")
    assert cursor_key(app) == key


async def confirm(pilot: Pilot) -> ConfirmOrderScreen:
    """``enter`` on 自助缴费 (去支付) → 确认订单."""
    app = pilot.app
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, ConfirmOrderScreen), what="确认订单")
    return app.screen


async def submit(pilot: Pilot, channel_key: str | None = None) -> PayScreen:
    """On 确认订单: optionally a channel key, then ``enter`` (提交支付) → 扫码支付 with a QR."""
    app = pilot.app
    if channel_key:
        await pilot.press(channel_key)
    await pilot.press("enter")
    await until(
        pilot,
        lambda: isinstance(app.screen, PayScreen) and app.screen.qr_url is not None,
        what="扫码支付 with a QR",
    )
    return app.screen


async def pay_screen_for(pilot: Pilot) -> PayScreen:
    """自助缴费 → a (全选) → 确认订单 → 提交支付 (微信支付): the pay screen."""
    await pilot.press("a")
    await confirm(pilot)
    return await submit(pilot)


def qr_widget(app: Any) -> QrCode:
    return app.screen.query_one(QrCode)


def decoded_qr(app: Any) -> str:
    """The text a phone reads from the QR on screen (matrix → picture → zxing-cpp)."""
    qr = qr_widget(app)
    assert qr.display and qr.fits
    modules: list[list[bool]] = []
    for strip in (qr.render_line(y) for y in range(qr.size.height)):
        upper, lower = [], []
        for segment in strip:
            for _ in segment.text:
                upper.append(segment.style.color.name == "#000000")
                lower.append(segment.style.bgcolor.name == "#000000")
        modules += [upper, lower]
    width, height = len(modules[0]), len(modules)
    small = Image.new("L", (width, height))
    small.putdata([0 if dark else 255 for row in modules for dark in row])
    found = zxingcpp.read_barcodes(small.resize((width * 8, height * 8), Image.Resampling.NEAREST))
    assert len(found) == 1, f"{len(found)} codes"
    return found[0].text


async def paid_on_screen(pilot: Pilot) -> None:
    app = pilot.app
    await until(
        pilot,
        lambda: isinstance(app.screen, PayScreen) and title(app) == "支付成功",
        what="支付成功",
    )


# ============================================================================ 自助缴费
async def test_fees_cursor_checking_mixed_dialog_select_all_and_previous_year(
    make_ui_app, ui_server
):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, *ZHANG, new_password=NEW_ZHANG)
        assert isinstance(app.screen, MenuScreen)
        await open_fees(pilot)
        screen = fees(app)
        assert title(app) == "自助缴费"
        # the current tag is open, the previous one closed with 查看收费项
        assert screen.open_tags == {CURRENT}
        table = screen.query_one("#fees", DataTable)
        assert row_text(app, f"tag:{CURRENT}")[:2] == ["▾", CURRENT]
        assert "查看收费项" not in row_text(app, f"tag:{CURRENT}")
        assert row_text(app, f"tag:{PREVIOUS}")[:2] == ["▸", PREVIOUS]
        assert "查看收费项" in row_text(app, f"tag:{PREVIOUS}")
        assert table.row_count == 1 + 5 + 1
        assert row_of(app, "学费") == {
            "mark": "[ ]",
            "name": "学费",
            "receipt": "财政票据",
            "due": "¥6,500.00",
            "paid": "¥0.00",
            "outstanding": "¥6,500.00",
            "state": "未缴",
        }
        assert row_of(app, "教材费")["receipt"] == "收据"
        # the cursor sits on the first payable item; nothing checked yet
        assert app.focused is table
        assert cursor_key(app) == key_of(app, "学费")
        assert checked(app) == []
        assert total(app) == "已选 0 项　合计 ¥0.00"

        # space checks and unchecks; 合计 follows
        await pilot.press("space")
        assert checked(app) == ["学费"]
        assert total(app) == "已选 1 项　合计 ¥6,500.00"
        await pilot.press("space")
        assert checked(app) == []
        assert total(app) == "已选 0 项　合计 ¥0.00"
        await pilot.press("space", "down", "space")
        assert checked(app) == sorted(FISCAL)
        assert total(app) == "已选 2 项　合计 ¥7,700.00"

        # an agency item while tuition is checked: the receipt-type dialog
        await pilot.press("down")
        assert cursor_key(app) == key_of(app, "教材费")
        await pilot.press("space")
        await until(pilot, lambda: isinstance(app.screen, Choice), what="mixed dialog")
        assert dialog_text(app) == MIXED
        assert dialog_buttons(app) == ["切换选择", "取消"]
        await pilot.press("escape")  # 取消 by escape keeps the selection
        await until(pilot, lambda: isinstance(app.screen, FeesScreen))
        assert checked(app) == sorted(FISCAL)
        assert total(app) == "已选 2 项　合计 ¥7,700.00"
        await pilot.press("space")
        await until(pilot, lambda: isinstance(app.screen, Choice))
        await pilot.press("right", "enter")  # the 取消 button keeps it too
        await until(pilot, lambda: isinstance(app.screen, FeesScreen))
        assert checked(app) == sorted(FISCAL)
        await pilot.press("space")
        await until(pilot, lambda: isinstance(app.screen, Choice))
        await pilot.press("enter")  # 切换选择: only this item
        await until(pilot, lambda: isinstance(app.screen, FeesScreen))
        assert checked(app) == ["教材费"]
        assert row_of(app, "学费")["mark"] == "[ ]"
        assert total(app) == "已选 1 项　合计 ¥420.00"

        # 全选 on a mix: tuition and accommodation first, and the college's advice
        await pilot.press("a")
        assert checked(app) == sorted(FISCAL)
        assert total(app) == "已选 2 项　合计 ¥7,700.00"
        assert FISCAL_FIRST in message(app)

        # enter on the previous year's tag line opens it: its items are paid
        await move_to(pilot, f"tag:{PREVIOUS}")
        await pilot.press("enter")
        await until(pilot, lambda: PREVIOUS in fees(app).open_tags, what="tag opened")
        assert isinstance(app.screen, FeesScreen)  # enter on a tag line is not 去支付
        assert row_text(app, f"tag:{PREVIOUS}")[:2] == ["▾", PREVIOUS]
        assert "查看收费项" not in row_text(app, f"tag:{PREVIOUS}")
        for name in FISCAL:
            assert row_of(app, name, PREVIOUS)["state"] == "已缴"
            assert row_of(app, name, PREVIOUS)["mark"] != "[ ]"
        await pilot.press("down")
        assert cursor_key(app) == key_of(app, "学费", PREVIOUS)
        await pilot.press("space")
        assert isinstance(app.screen, FeesScreen)
        assert checked(app) == sorted(FISCAL)  # the paid item did not join the selection
        assert row_of(app, "学费", PREVIOUS)["mark"] != "[✓]"
        assert message(app) == "该费用项已缴"
        assert total(app) == "已选 2 项　合计 ¥7,700.00"
        # nothing was ordered on the way
        assert orders_of(ui_server, ZHANG[0]) == []


# ============================================================================ paying
async def test_pay_fiscal_then_agency_group_in_the_sandbox(
    make_ui_app, ui_server, zhang_changed, phone, clock
):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        await pilot.press("a")
        assert checked(app) == sorted(FISCAL)

        # 确认订单: items, 合计, 票据类型, 收款方
        confirmation = await confirm(pilot)
        assert title(app) == "确认订单"
        text = screen_text(app)
        for line in ("学费\n¥6,500.00", "住宿费\n¥1,200.00"):
            assert line in text
        assert shown(app, "#total") == "合计 ¥7,700.00"
        assert shown(app, "#receipt") == "票据类型 财政票据"
        assert shown(app, "#payee") == f"收款方 {PAYEE}"
        assert confirmation.channel == "wechat"
        await pilot.press("2")
        assert confirmation.channel == "alipay"
        assert confirmation.query_one(RadioSet).pressed_button.name == "alipay"

        pay = await submit(pilot)
        (first,) = orders_of(ui_server, ZHANG[0])
        assert (first["status"], first["pay_channel"], first["total"]) == ("open", "alipay", 770000)
        assert order_item_names(ui_server, first["order_no"]) == sorted(FISCAL)
        assert pay.order.order_no == first["order_no"]
        assert title(app) == "扫码支付"
        assert qr_widget(app).display
        assert decoded_qr(app) == first["qr_url"]
        assert shown(app, "#pay-channel") == "请用 支付宝 扫码"
        assert shown(app, "#pay-amount") == "金额 ¥7,700.00"
        assert shown(app, "#pay-payee") == f"收款方 {PAYEE}"
        assert shown(app, "#countdown") == "剩余支付时间 15:00"

        assert (await phone.sandbox_pay(first["qr_url"], "success")).trade_state == "SUCCESS"
        await paid_on_screen(pilot)
        first = order_row(ui_server, first["order_no"])
        assert first["status"] == "paid"
        outcome = shown(app, "#outcome")
        assert f"票据号 {first['receipt_no']}" in outcome
        assert f"交易号 {first['transaction_id']}" in outcome
        assert "支付时间 2026-11-26 10:00:00" in outcome  # school time
        assert shown(app, "#pay-order") == f"订单号 {first['order_no']}"
        assert not qr_widget(app).display

        clock.advance(60)  # the second order is a minute later
        await pilot.press("enter")  # 返回
        await until(
            pilot,
            lambda: isinstance(app.screen, FeesScreen) and CONTINUE_REST in message(app),
            what="back on 自助缴费 with the rest checked",
        )
        await settle(pilot)
        assert checked(app) == sorted(AGENCY)
        assert total(app) == "已选 3 项　合计 ¥630.00"
        for name in FISCAL:
            assert row_of(app, name)["state"] == "已缴"

        await confirm(pilot)
        assert shown(app, "#total") == "合计 ¥630.00"
        assert shown(app, "#receipt") == "票据类型 收据"
        await submit(pilot)
        second = orders_of(ui_server, ZHANG[0])[-1]
        assert second["order_no"] != first["order_no"]
        assert order_item_names(ui_server, second["order_no"]) == sorted(AGENCY)
        assert shown(app, "#pay-channel") == "请用 微信支付 扫码"
        await phone.sandbox_pay(second["qr_url"], "success")
        await paid_on_screen(pilot)
        assert order_row(ui_server, second["order_no"])["status"] == "paid"

        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FeesScreen), what="自助缴费")
        await settle(pilot)
        for name in FISCAL + AGENCY:
            assert row_of(app, name)["state"] == "已缴", name
        assert checked(app) == []
        assert set(fee_states(ui_server, ZHANG[0]).values()) == {"paid"}

        # 我的订单: both paid, newest first
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MenuScreen))
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen))
        await settle(pilot)
        table = app.screen.query_one("#orders", DataTable)
        listed = [[plain(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert [r[0] for r in listed] == [second["order_no"], first["order_no"]]
        assert [r[3] for r in listed] == ["已支付", "已支付"]
        assert listed[0][2].strip() == "¥630.00" and listed[1][2].strip() == "¥7,700.00"


def press_at_once(app: Any, *keys: str) -> None:
    """Key events queued back to back, before the app handles the first (a fast double press)."""
    for key in keys:
        event = events.Key(key, "\r" if key == "enter" else key)
        event.set_sender(app)
        app._driver.send_message(event)


def spy_on_create_order(app: Any) -> list[tuple[list[str], str]]:
    """Record every ``create_order(item_ids, key)`` the app sends (and still send it)."""
    calls: list[tuple[list[str], str]] = []
    api = app.api
    real = api.create_order

    async def create_order(item_ids: list[str], idempotency_key: str):
        calls.append((list(item_ids), idempotency_key))
        return await real(item_ids, idempotency_key)

    api.create_order = create_order
    return calls


async def one_order_on_pay_screen(pilot: Pilot, server: BackgroundServer) -> PayScreen:
    """Wait for the order and the pay screen; exactly one order and one key were used."""
    app = pilot.app
    await until(
        pilot,
        lambda: (
            bool(orders_of(server, ZHANG[0]))
            and any(isinstance(s, PayScreen) for s in app.screen_stack)
            and not busy(app)
        ),
        what="an order and 扫码支付",
    )
    await pilot.pause()
    orders = orders_of(server, ZHANG[0])
    assert len(orders) == 1, orders
    assert orders[0]["status"] == "open"
    assert len(rows(server, "SELECT * FROM idempotency WHERE username=?", ZHANG[0])) == 1
    (pay,) = [s for s in app.screen_stack if isinstance(s, PayScreen)]
    assert pay.order.order_no == orders[0]["order_no"]
    return pay


async def test_enter_twice_on_confirm_makes_one_order(make_ui_app, ui_server, zhang_changed):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        await pilot.press("a")
        await confirm(pilot)
        sent = spy_on_create_order(app)
        press_at_once(app, "enter", "enter")  # both reach 确认订单
        pay = await one_order_on_pay_screen(pilot, ui_server)
        assert sent, "no order was created"
        assert len({key for _, key in sent}) == 1, f"one confirmation, several keys: {sent}"
        assert app.screen is pay, f"{type(app.screen).__name__}:\n{screen_text(app)}"
        assert qr_widget(app).display


async def test_enter_twice_at_key_pace_makes_one_order(make_ui_app, ui_server, zhang_changed):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        await pilot.press("a")
        await confirm(pilot)
        sent = spy_on_create_order(app)
        await pilot.press("enter", "enter")  # the second may land on 扫码支付 already
        await one_order_on_pay_screen(pilot, ui_server)
        assert sent, "no order was created"
        assert len({key for _, key in sent}) == 1, f"one confirmation, several keys: {sent}"


async def test_a_stray_enter_on_a_fresh_pay_screen_asks_nothing(
    make_ui_app, ui_server, zhang_changed
):
    """``enter`` is 返回 on 扫码支付 once there is an outcome; while the order is open it must
    not start 我已支付 (that is ``y``, and it would take the QR away from a student who
    has not paid yet)."""
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        pay = await pay_screen_for(pilot)
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is pay, (
            f"enter on an open 扫码支付 opened {type(app.screen).__name__}:\n{screen_text(app)}"
        )
        assert title(app) == "扫码支付"
        assert qr_widget(app).display


# ============================================================================ two devices
async def test_another_devices_open_order_shows_in_progress_and_offers_to_resume(
    make_ui_app, ui_server, device
):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], NEW_ZHANG)
        assert isinstance(app.screen, MenuScreen)  # nothing unfinished yet
        # the other device orders tuition and accommodation meanwhile
        current = (await device.fees()).tags[0]
        fiscal = [i.id for i in current.items if i.receipt_type == "fiscal"]
        order = await device.create_order(fiscal, new_idempotency_key())
        await device.pay_order(order.order_no, "wechat")

        await open_fees(pilot)
        for name in FISCAL:
            row = row_of(app, name)
            assert row["state"] == f"支付中 …{order.order_no[-4:]}", row
            assert row["mark"] != "[ ]"
        assert row_of(app, "教材费")["state"] == "未缴"
        assert cursor_key(app) == key_of(app, "教材费")  # the first payable item
        await pilot.press("up", "up")
        assert cursor_key(app) == key_of(app, "学费")
        assert order.order_no in shown(app, "#detail")
        await pilot.press("space")
        await until(pilot, lambda: isinstance(app.screen, Choice), what="resume dialog")
        assert order.order_no in dialog_text(app)
        assert dialog_buttons(app) == ["继续支付", "取消"]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, FeesScreen))
        assert checked(app) == []
        await pilot.press("a")  # 全选 leaves out what is in an open order
        assert checked(app) == sorted(AGENCY)
        assert cursor_key(app) == key_of(app, "学费")
        await pilot.press("space")
        await until(pilot, lambda: isinstance(app.screen, Choice))
        await pilot.press("enter")  # 继续支付
        await until(pilot, lambda: isinstance(app.screen, PayScreen), what="resumed")
        assert app.screen.order.order_no == order.order_no
        assert decoded_qr(app) == order_row(ui_server, order.order_no)["qr_url"]
        assert len(orders_of(ui_server, ZHANG[0])) == 1


async def test_an_order_made_elsewhere_after_checking_cannot_be_made_twice(
    make_ui_app, ui_server, device
):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], NEW_ZHANG)
        await open_fees(pilot)
        await pilot.press("a")
        assert checked(app) == sorted(FISCAL)
        # while this screen still shows them unpaid, the other device orders them
        current = (await device.fees()).tags[0]
        fiscal = [i.id for i in current.items if i.receipt_type == "fiscal"]
        order = await device.create_order(fiscal, new_idempotency_key())
        await confirm(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, Choice), what="resume offered")
        assert order.order_no in dialog_text(app)
        assert len(orders_of(ui_server, ZHANG[0])) == 1
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PayScreen), what="resumed")
        assert app.screen.order.order_no == order.order_no
        assert len(orders_of(ui_server, ZHANG[0])) == 1


# ============================================================================ outcomes
@pytest.mark.parametrize("ui_server_config", [ui_config(order_ttl_seconds=60)], ids=["ttl60"])
async def test_an_expired_order_closes_and_frees_its_items(
    make_ui_app, ui_server, zhang_changed, clock
):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        pay = await pay_screen_for(pilot)
        number = pay.order.order_no
        assert shown(app, "#countdown") == "剩余支付时间 1:00"
        assert fee_states(ui_server, ZHANG[0])["学费"] == "in_order"

        clock.advance(61)
        await until(pilot, lambda: title(app) == "订单已关闭", what="订单已关闭")
        assert CLOSED_LINE in shown(app, "#outcome")
        assert not qr_widget(app).display
        row = order_row(ui_server, number)
        assert (row["status"], row["close_reason"]) == ("closed", "expired")

        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FeesScreen), what="自助缴费")
        await settle(pilot)
        for name in FISCAL:
            assert row_of(app, name)["state"] == "未缴"
            assert row_of(app, name)["mark"] in ("[ ]", "[✓]")  # checkable again
            assert fee_states(ui_server, ZHANG[0])[name] == "unpaid"
        # nothing was paid: no "go on with the other fees", no swap to the agency group
        assert CONTINUE_REST not in message(app)
        assert not set(checked(app)) & set(AGENCY), checked(app)


async def test_dropped_notify_then_claim_paid_shows_success(
    make_ui_app, ui_server, zhang_changed, phone
):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        pay = await pay_screen_for(pilot)
        number = pay.order.order_no
        result = await phone.sandbox_pay(pay.qr_url, "success", notify="drop")
        assert result.trade_state == "SUCCESS"
        assert order_row(ui_server, number)["status"] == "open"  # nobody told the backend
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, Choice), what="claim question")
        assert "确认已在支付软件中付款" in dialog_text(app)
        await pilot.press("enter")
        await paid_on_screen(pilot)
        row = order_row(ui_server, number)
        assert row["status"] == "paid"
        assert f"票据号 {row['receipt_no']}" in shown(app, "#outcome")


async def test_slow_payment_claimed_waits_then_settles_by_itself(
    make_ui_app, ui_server, zhang_changed, phone, clock
):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        pay = await pay_screen_for(pilot)
        number = pay.order.order_no
        result = await phone.sandbox_pay(pay.qr_url, "slow", delay_seconds=30)
        assert result.trade_state == "NOTPAY"
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, Choice), what="claim question")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: isinstance(app.screen, PayScreen) and DO_NOT_PAY_AGAIN in screen_text(app),
            what="the college's do-not-pay-again words",
        )
        assert shown(app, "#outcome") == DO_NOT_PAY_AGAIN
        assert not qr_widget(app).display  # never a QR to pay again
        assert "▀" not in screen_text(app)
        for button in ("#claim", "#change", "#cancel"):
            assert not app.screen.query_one(button).display
        assert order_row(ui_server, number)["status"] == "awaiting_confirmation"
        assert fee_states(ui_server, ZHANG[0])["学费"] == "in_order"

        clock.advance(31)
        await paid_on_screen(pilot)
        row = order_row(ui_server, number)
        assert row["status"] == "paid"
        assert f"交易号 {row['transaction_id']}" in shown(app, "#outcome")


async def test_awaiting_confirmation_shows_in_orders_and_fees(
    make_ui_app, ui_server, zhang_changed, phone, clock
):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        pay = await pay_screen_for(pilot)
        number = pay.order.order_no
        await phone.sandbox_pay(pay.qr_url, "slow", delay_seconds=30)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, Choice))
        await pilot.press("enter")
        await until(pilot, lambda: DO_NOT_PAY_AGAIN in screen_text(app), what="waiting")
        await pilot.press("enter")  # 返回
        await until(pilot, lambda: isinstance(app.screen, FeesScreen), what="自助缴费")
        await settle(pilot)
        for name in FISCAL:
            assert row_of(app, name)["state"].startswith("支付中 …")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MenuScreen))
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen))
        await settle(pilot)
        table = app.screen.query_one("#orders", DataTable)
        assert [plain(c) for c in table.get_row(number)][3] == "待确认"
        await pilot.press("enter")  # opening it resumes 扫码支付, still without a QR
        await until(pilot, lambda: isinstance(app.screen, PayScreen), what="扫码支付")
        assert app.screen.order.order_no == number
        assert not qr_widget(app).display
        clock.advance(31)
        await paid_on_screen(pilot)


async def test_switching_channel_gives_a_new_qr_and_closes_the_old_page(
    make_ui_app, ui_server, zhang_changed
):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        pay = await pay_screen_for(pilot)
        number, old_url = pay.order.order_no, pay.qr_url
        assert shown(app, "#pay-channel") == "请用 微信支付 扫码"
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, Choice), what="channel choice")
        assert dialog_buttons(app) == ["1 微信支付", "2 支付宝", "3 建行龙支付"]
        assert app.focused is not None and app.focused.id == "wechat"  # the current channel
        await pilot.press("3")
        await until(
            pilot,
            lambda: isinstance(app.screen, PayScreen) and app.screen.channel == "ccb",
            what="switched to ccb",
        )
        await settle(pilot)
        row = order_row(ui_server, number)
        assert (row["status"], row["pay_channel"]) == ("open", "ccb")
        assert row["qr_url"] != old_url
        assert app.screen.qr_url == row["qr_url"]
        assert decoded_qr(app) == row["qr_url"]
        assert shown(app, "#pay-channel") == "请用 建行龙支付 扫码"
        async with httpx.AsyncClient() as browser:
            assert (await browser.get(old_url)).status_code == 409
            assert (await browser.get(row["qr_url"])).status_code == 200
        assert len(orders_of(ui_server, ZHANG[0])) == 1


async def test_cancel_closes_the_order_and_frees_the_items(make_ui_app, ui_server, zhang_changed):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        pay = await pay_screen_for(pilot)
        number = pay.order.order_no
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, Choice), what="cancel question")
        assert dialog_text(app) == "确认取消这个订单？"
        await pilot.press("enter")
        await until(pilot, lambda: title(app) == "订单已关闭", what="订单已关闭")
        assert CLOSED_LINE in shown(app, "#outcome")
        row = order_row(ui_server, number)
        assert (row["status"], row["close_reason"]) == ("closed", "cancelled")
        assert rows(ui_server, "SELECT * FROM item_locks WHERE order_no=?", number) == []
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FeesScreen), what="自助缴费")
        await settle(pilot)
        for name in FISCAL:
            assert row_of(app, name)["state"] == "未缴"
        assert CONTINUE_REST not in message(app)  # nothing was paid
        assert not set(checked(app)) & set(AGENCY), checked(app)
        await pilot.press("a")
        assert checked(app) == sorted(FISCAL)


async def test_cancel_during_a_slow_payment_says_in_progress_and_keeps_the_order(
    make_ui_app, ui_server, zhang_changed, phone
):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        pay = await pay_screen_for(pilot)
        number = pay.order.order_no
        await phone.sandbox_pay(pay.qr_url, "slow", delay_seconds=60)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, Choice), what="cancel question")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: isinstance(app.screen, PayScreen) and IN_PROGRESS in message(app),
            what="in-progress sentence",
        )
        await settle(pilot)
        assert title(app) == "扫码支付"
        assert qr_widget(app).display
        assert order_row(ui_server, number)["status"] == "open"
        assert fee_states(ui_server, ZHANG[0])["学费"] == "in_order"


# ============================================================================ refusals
async def test_outside_payment_hours_go_pay_is_disabled_and_says_when_it_opens(
    make_ui_app, ui_server, zhang_changed, clock
):
    clock.set(datetime(2026, 11, 26, 22, 30, tzinfo=SCHOOL_TZ))
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        assert fees(app).query_one("#go-pay", TrButton).disabled
        assert shown(app, "#hours") == "现在不在缴费开放时间，08:00 开放（08:00-22:00）"
        await pilot.press("a")
        assert checked(app) == sorted(FISCAL)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, FeesScreen)
        assert orders_of(ui_server, ZHANG[0]) == []


async def test_incomplete_profile_brings_the_student_to_profile_with_the_reason(
    make_ui_app, ui_server
):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, *LI)
        await open_fees(pilot)
        await pilot.press("a")
        await confirm(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ProfileScreen), what="个人信息")
        await settle(pilot)
        assert title(app) == "个人信息"
        assert shown(app, "#reason") == PROFILE_REASON
        assert orders_of(ui_server, LI[0]) == []


# ============================================================================ crash
async def test_an_unfinished_order_opens_by_itself_after_a_crash(
    make_ui_app, ui_server, zhang_changed
):
    first = make_ui_app()
    async with first.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        pay = await pay_screen_for(pilot)
        number = pay.order.order_no
    assert order_row(ui_server, number)["status"] == "open"

    again = make_ui_app()
    async with again.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await until(pilot, lambda: isinstance(again.screen, PayScreen), what="扫码支付 by itself")
        assert again.screen.order.order_no == number
        assert title(again) == "扫码支付"
        assert decoded_qr(again) == order_row(ui_server, number)["qr_url"]
        assert len(orders_of(ui_server, ZHANG[0])) == 1
