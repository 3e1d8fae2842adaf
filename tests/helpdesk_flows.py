"""Helpdesk flows shared by the Pilot tests: the staff login, search, reading its lines."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from epay_tui.api.client import ApiClient, new_idempotency_key
from epay_tui.api.models import Order
from epay_tui.screens.dialog import Choice
from epay_tui.screens.helpdesk_home import HelpdeskHome
from epay_tui.screens.staff_login import StaffLoginScreen
from epay_tui.screens.student_page import StudentPage
from epay_tui.server.runner import BackgroundServer
from epay_tui.widgets.texts import Tr
from tests.conftest import CHEN, STAFF, solve_login
from tests.pilot_helpers import answer_for, fill, text_of, until


# ---------------------------------------------------------------------------- waiting
def message_key(app) -> str | None:
    try:
        return app.screen.query_one("#message", Tr).key
    except Exception:
        return None


def line(app, widget_id: str) -> str:
    """The words a ``Tr`` line of the current screen shows."""
    return str(app.screen.query_one(f"#{widget_id}", Tr).render())


def notices(app) -> list[str]:
    """The words of the notifications on screen (Textual shows each as a ``Toast``)."""
    return [text_of(toast) for toast in app.screen.query("Toast")]


def rows(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


# ---------------------------------------------------------------------------- flows
async def staff_form(pilot: Pilot) -> StaffLoginScreen:
    app = pilot.app
    await until(
        pilot,
        lambda: isinstance(app.screen, StaffLoginScreen) and app.screen.captcha_id is not None,
        "the staff login with a captcha",
    )
    return app.screen


async def submit_staff_login(
    pilot: Pilot, server: BackgroundServer, account: tuple[str, str], remember: bool = False
) -> None:
    """账号 → 密码 → 验证码 from the keyboard; remember me checked with space if asked."""
    screen = await staff_form(pilot)
    answer = answer_for(server, screen.captcha_id)
    await fill(pilot, username=account[0], password=account[1], captcha=answer)
    if remember:
        await pilot.press("tab", "space", "tab", "enter")  # 记住我, then 登录
    else:
        await pilot.press("enter")


async def staff_home(
    pilot: Pilot, server: BackgroundServer, remember: bool = False
) -> HelpdeskHome:
    await submit_staff_login(pilot, server, STAFF, remember)
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, HelpdeskHome), "服务台")
    await until(pilot, lambda: getattr(app.focused, "id", None) == "search", "focus in search")
    return app.screen


async def search(pilot: Pilot, query: str) -> DataTable:
    """Type ``query`` into 学号或姓名 (emptied first) and press enter."""
    app = pilot.app
    field = app.screen.query_one("#search", Input)
    field.focus()
    await pilot.pause()
    await pilot.press("end", *["backspace"] * len(field.value), *query, "enter")
    table = app.screen.query_one("#students", DataTable)
    await until(
        pilot,
        lambda: app.focused is table or message_key(app) in ("staff.none_found", "error.FORBIDDEN"),
        f"results for {query!r}",
    )
    return table


async def open_student(pilot: Pilot, username: str) -> StudentPage:
    app = pilot.app
    table = await search(pilot, username)
    assert rows(table)[0][0] == username, rows(table)
    await pilot.press("enter")
    await until(
        pilot,
        lambda: isinstance(app.screen, StudentPage) and app.screen.detail is not None,
        f"the page of {username}",
    )
    return app.screen


async def confirm(pilot: Pilot, key: str, expect: str) -> None:
    """A confirmation dialog asks ``expect``; ``enter`` confirms (the first button)."""
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, Choice), "a confirmation")
    question = "\n".join(str(w.render()) for w in app.screen.query(Tr))
    assert expect in question, question
    assert app.focused is not None and app.focused.id == "yes"
    await pilot.press(key)
    await until(pilot, lambda: not isinstance(app.screen, Choice), "the dialog answered")


async def result_shown(pilot: Pilot, key: str, widget_id: str = "result") -> str:
    app = pilot.app
    await until(
        pilot,
        lambda: app.screen.query_one(f"#{widget_id}", Tr).key == key,
        f"the result {key}",
    )
    return line(app, widget_id)


async def opened(pilot: Pilot, key: str, kind: type, table_id: str, count: int) -> DataTable:
    """``key`` opens screen ``kind``; wait until its table ``table_id`` has ``count`` rows."""
    app = pilot.app
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, kind), kind.__name__)
    table = app.screen.query_one(f"#{table_id}", DataTable)
    await until(pilot, lambda: table.row_count == count, f"{count} rows in #{table_id}")
    return table


# ---------------------------------------------------------------------------- money
async def chen_paid(server: BackgroundServer, code: str) -> Order:
    """陈静 pays one of her unpaid fees by scanning (微信支付), as on her phone."""
    async with ApiClient(server.url) as chen:
        await solve_login(chen, *CHEN)
        items = [i for tag in (await chen.fees()).tags for i in tag.items]
        item = next(i for i in items if i.id.endswith(f"-{code}"))
        order = await chen.create_order([item.id], new_idempotency_key())
        qr = await chen.pay_order(order.order_no, "wechat")
        await chen.sandbox_pay(qr.qr_url, "success")
        paid = await chen.get_order(order.order_no, wait=10, status="open")
    assert paid.status == "paid"
    return paid


async def paid_twice(server: BackgroundServer, code: str) -> tuple[Order, str]:
    """陈静 pays a fee, then the gateway records a second payment of that order (an open
    discrepancy): the order and the second trade's number."""
    order = await chen_paid(server, code)
    async with ApiClient(server.url) as sandbox:
        return order, (await sandbox.sandbox_duplicate_payment(order.order_no)).trade_no
