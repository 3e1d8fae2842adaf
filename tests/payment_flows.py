"""The pay flow as a student drives it, shared by the payment and fault-matrix tests.

Reading the screen (``title``, ``shown``, ``screen_text``), reading the backend's
store (``rows``, ``order_row``, ``fee_states``) and the steps of paying (``log_in``,
``open_fees``, ``pay_screen_for``, ``paid_on_screen``). The pay screen follows its
order with a long poll that never ends while the order is open, so waits are on
conditions (``until``), never on every worker finishing, and never a fixed sleep.
"""

from __future__ import annotations

from typing import Any

import zxingcpp
from PIL import Image
from textual.pilot import Pilot
from textual.widgets import DataTable
from textual.worker import WorkerState

from epay_tui.api.client import ApiClient, new_idempotency_key
from epay_tui.api.models import Order, Receipt
from epay_tui.screens.change_password import ChangePasswordScreen
from epay_tui.screens.confirm_order import ConfirmOrderScreen
from epay_tui.screens.dialog import Choice
from epay_tui.screens.fees import FeesScreen
from epay_tui.screens.login import LoginScreen
from epay_tui.screens.menu import MenuScreen
from epay_tui.screens.pay import PayScreen
from epay_tui.server.runner import BackgroundServer
from epay_tui.widgets.qr import QrCode
from epay_tui.widgets.texts import TrButton
from tests.conftest import STAFF, ZHANG, solve_login
from tests.invariants import rows
from tests.pilot_helpers import answer_for, fill, plain, shown, title, until

SIZE = (80, 24)
FINANCE = ("finance01", "Finance2026")
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
def dialog_text(app: Any) -> str:
    assert isinstance(app.screen, Choice), type(app.screen).__name__
    return shown(app, ".dialog-text")


def dialog_buttons(app: Any) -> list[str]:
    return [plain(b.label) for b in app.screen.query(TrButton)]


# ---------------------------------------------------------------------------- backend
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


# ---------------------------------------------------------------------------- money after payment
async def paid_online(server: BackgroundServer, student: tuple[str, str], *names: str) -> Order:
    """``student`` (number, password) pays ``names`` of the current year by scanning, on
    their phone: the order once paid."""
    async with ApiClient(server.url) as phone:
        await solve_login(phone, *student)
        fees_now = await phone.fees()
        items = {i.name: i.id for t in fees_now.tags if t.tag == CURRENT for i in t.items}
        order = await phone.create_order([items[n] for n in names], new_idempotency_key())
        qr = await phone.pay_order(order.order_no, "wechat")
        await phone.sandbox_pay(qr.qr_url, "success")
        paid = await phone.get_order(order.order_no, wait=10, status="open")
        assert paid.status == "paid"
        return paid


async def receipt_of(server: BackgroundServer, order_no: str) -> Receipt:
    async with ApiClient(server.url) as staff:
        await solve_login(staff, *STAFF)
        return await staff.staff_receipt(order_no)


async def refund(server: BackgroundServer, order: Order, *names: str) -> None:
    """The helpdesk asks to give ``names`` of ``order`` back; the finance office approves."""
    async with ApiClient(server.url) as helpdesk, ApiClient(server.url) as finance:
        await solve_login(helpdesk, *STAFF)
        await solve_login(finance, *FINANCE)
        ids = [i.id for i in order.items if i.name in names]
        asked = await helpdesk.staff_request_refund(
            order.order_no, "退学", new_idempotency_key(), item_ids=ids
        )
        approved = await finance.staff_approve_refund(asked.refund_no)
        assert approved.status == "succeeded", approved.status


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
    await fill(pilot, username=username, password=password, captcha=answer)
    await pilot.press("enter")
    if new_password is not None:
        await until(pilot, lambda: isinstance(app.screen, ChangePasswordScreen), what="修改密码")
        await fill(pilot, new=new_password, confirm=new_password)
        await pilot.press("enter")
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
    """The row key under the fee table's cursor (as the table itself reports it)."""
    table = fees(app).query_one(DataTable)
    if table.row_count == 0:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value


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


async def zhang_on_pay_screen(pilot: Pilot, server: BackgroundServer, password: str) -> PayScreen:
    """张伟 logs in, 自助缴费, 全选, 确认订单, 提交支付 (微信支付): 扫码支付 with its QR."""
    await log_in(pilot, server, ZHANG[0], password)
    await open_fees(pilot)
    return await pay_screen_for(pilot)
