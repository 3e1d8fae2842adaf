"""Pilot flows of the money after payment, the student's side, against the live backend:
the receipt (电子票据) from 我的订单 and on 支付成功, 补发票据 into the sandbox's outbox
and its daily limit, 打印缴费凭证 into a file printer (and a printer that fails), and
refunds made by two staff members showing in 我的订单 and 自助缴费.

Payments are made as a phone would (the sandbox's pay page); refunds through the staff
API, a helpdesk worker asking and the finance office approving. Waits are on conditions
(``until``), never a fixed sleep.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable

from epay_tui.api.client import ApiClient
from epay_tui.screens.fees import FeesScreen
from epay_tui.screens.menu import MenuScreen
from epay_tui.screens.orders import OrdersScreen
from epay_tui.screens.receipt import ReceiptScreen
from epay_tui.server.runner import BackgroundServer
from epay_tui.widgets.chrome import KeyBar
from tests.conftest import CHEN
from tests.payment_flows import (
    PAYEE,
    SIZE,
    fees,
    key_of,
    log_in,
    move_to,
    open_fees,
    paid_on_screen,
    paid_online,
    receipt_of,
    refund,
    row_of,
    settle,
    zhang_on_pay_screen,
)
from tests.pilot_helpers import message, plain, screen_text, shown, until

RATE_LIMITED = "操作过于频繁，请 "


# ---------------------------------------------------------------------------- backend
async def outbox(server: BackgroundServer) -> list[Any]:
    async with ApiClient(server.url) as hooks:
        return (await hooks.outbox()).messages


# ---------------------------------------------------------------------------- screens
def bar_words(app: Any) -> list[str]:
    """The keys the active screen's bar draws (its own, not the app's), as catalog keys."""
    own, _ = app.screen.query_one(KeyBar).keys()
    return [word for _, word in own]


async def my_orders(pilot: Pilot, server: BackgroundServer, count: int) -> OrdersScreen:
    """陈静 logs in and opens 我的订单 with ``count`` orders listed."""
    app = pilot.app
    await log_in(pilot, server, *CHEN)
    assert isinstance(app.screen, MenuScreen), type(app.screen).__name__
    await pilot.press("2")
    await until(
        pilot,
        lambda: isinstance(app.screen, OrdersScreen) and len(app.screen.orders) == count,
        what=f"我的订单 with {count} orders",
    )
    await settle(pilot)
    return app.screen


async def open_receipt(pilot: Pilot, order_no: str) -> ReceiptScreen:
    """On 我的订单: the cursor to ``order_no``, ``enter``: 电子票据, loaded."""
    app = pilot.app
    table = app.screen.query_one("#orders", DataTable)
    table.move_cursor(row=table.get_row_index(order_no))
    await pilot.press("enter")
    await until(
        pilot,
        lambda: isinstance(app.screen, ReceiptScreen) and app.screen.desk.receipt is not None,
        what="电子票据 loaded",
    )
    await settle(pilot)
    return app.screen


async def said(pilot: Pilot, key: str) -> str:
    """Wait until the message line shows catalog entry ``key``; its words."""
    app = pilot.app
    await until(pilot, lambda: app.screen.message.key == key, what=key)
    return message(app)


def order_status(app: Any, order_no: str) -> str:
    table = app.screen.query_one("#orders", DataTable)
    return plain(table.get_row(order_no)[3])


# ============================================================================ the receipt
async def test_a_paid_order_in_my_orders_opens_its_receipt_and_resends_it_three_times_a_day(
    make_ui_app, ui_server
):
    order = await paid_online(ui_server, CHEN, "教材费", "保险费")
    receipt = await receipt_of(ui_server, order.order_no)
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await my_orders(pilot, ui_server, 1)
        assert order_status(app, order.order_no) == "已支付"
        await open_receipt(pilot, order.order_no)
        assert shown(app, ".screen-title") == "电子票据"
        text = screen_text(app)
        assert f"票据号 {receipt.receipt_no}　校验码 {receipt.check_code}" in text
        assert f"订单号 {order.order_no}　收据" in text
        assert "缴费人 陈静（2024010004）" in text
        assert f"收款方 {PAYEE}" in text
        assert f"支付方式 微信支付　交易号 {receipt.transaction_id}" in text
        assert "支付时间 2026-11-26 10:00:00" in text
        lines = [line.split() for line in text.splitlines()]
        assert ["教材费", "¥420.00"] in lines
        assert ["保险费", "¥150.00"] in lines
        assert ["合计", "¥570.00"] in lines
        assert "已退款" not in text  # nothing was given back
        # no printer configured: no print key, and p does nothing
        assert bar_words(app) == ["key.resend_receipt", "key.back"]
        await pilot.press("p")
        assert app.screen.message.key == ""

        # 补发票据: one SMS and one e-mail, to 陈静's contacts on file, naming the receipt
        before = len(await outbox(ui_server))
        for round_ in range(1, 4):
            await pilot.press("r")
            assert await said(pilot, "receipt.resent") == "电子票据已重新发送到预留的手机和邮箱"
            sent = (await outbox(ui_server))[before:]
            assert len(sent) == 2 * round_
            assert {(m.channel, m.to) for m in sent[-2:]} == {
                ("sms", "13800000004"),
                ("email", "chenjing@example.edu.cn"),
            }
            assert all(receipt.receipt_no in m.body for m in sent)
            app.screen.message.clear()
        # the 4th within a day: the catalog's words with the seconds to wait
        await pilot.press("r")
        await until(pilot, lambda: app.screen.message.key == "error.RATE_LIMITED", what="429")
        assert message(app).startswith(RATE_LIMITED) and message(app).endswith(" 秒后再试")
        seconds = message(app).removeprefix(RATE_LIMITED).split()[0]
        assert seconds.isdigit() and 0 < int(seconds) <= 24 * 3600
        assert len(await outbox(ui_server)) == before + 6
        assert isinstance(app.screen, ReceiptScreen)  # the receipt stays

        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen), what="back to 我的订单")


async def test_the_receipt_in_english_and_f1_help(make_ui_app, ui_server):
    order = await paid_online(ui_server, CHEN, "体检费")
    receipt = await receipt_of(ui_server, order.order_no)
    app = make_ui_app(lang="en")
    async with app.run_test(size=SIZE) as pilot:
        await my_orders(pilot, ui_server, 1)
        await open_receipt(pilot, order.order_no)
        text = screen_text(app)
        assert f"Receipt {receipt.receipt_no}  Check code {receipt.check_code}" in text
        assert "Paid by WeChat Pay" in text
        assert ["Total", "¥60.00"] in [line.split() for line in text.splitlines()]
        await pilot.press("f1")
        await until(pilot, lambda: "R resends it" in screen_text(app), what="help")
        await pilot.press("escape")
        await pilot.press("f2")  # 中文, live
        await until(pilot, lambda: "校验码" in screen_text(app), what="中文")
        assert f"票据号 {receipt.receipt_no}" in screen_text(app)


# ============================================================================ printing
async def test_the_print_key_prints_the_slip_to_a_file_printer(make_ui_app, ui_server, tmp_path):
    order = await paid_online(ui_server, CHEN, "教材费", "保险费")
    receipt = await receipt_of(ui_server, order.order_no)
    slip = tmp_path / "slip.bin"
    app = make_ui_app(printer=f"file:{slip}")
    async with app.run_test(size=SIZE) as pilot:
        await my_orders(pilot, ui_server, 1)
        await open_receipt(pilot, order.order_no)
        assert bar_words(app) == ["key.resend_receipt", "key.print_receipt", "key.back"]
        await pilot.press("p")
        assert await said(pilot, "receipt.printed") == "缴费凭证已打印，请取走"
    printed = slip.read_bytes().decode("gb18030")
    assert "缴费凭证" in printed
    assert receipt.receipt_no in printed and receipt.check_code in printed
    assert "教材费" in printed and "￥570.00" in printed and "陈静" in printed


async def test_a_printer_that_fails_says_so_keeps_the_receipt_and_prints_once_fixed(
    make_ui_app, ui_server, tmp_path
):
    order = await paid_online(ui_server, CHEN, "体检费")
    receipt = await receipt_of(ui_server, order.order_no)
    folder = tmp_path / "not-yet"
    slip = folder / "slip.bin"
    app = make_ui_app(printer=f"file:{slip}")
    async with app.run_test(size=SIZE) as pilot:
        await my_orders(pilot, ui_server, 1)
        await open_receipt(pilot, order.order_no)
        await pilot.press("p")
        failed = await said(pilot, "receipt.print_failed")
        assert failed.startswith("打印失败：") and "no such file or directory" in failed
        assert "Traceback" not in screen_text(app)
        assert isinstance(app.screen, ReceiptScreen)
        assert f"校验码 {receipt.check_code}" in screen_text(app)  # nothing lost
        assert not slip.exists()

        folder.mkdir()  # the printer is back
        await pilot.press("p")
        await said(pilot, "receipt.printed")
    assert receipt.receipt_no in slip.read_bytes().decode("gb18030")


# ============================================================================ 支付成功
async def test_payment_success_shows_the_receipt_with_resend_and_print_keys(
    make_ui_app, ui_server, zhang_changed, phone, tmp_path
):
    slip = tmp_path / "slip.bin"
    app = make_ui_app(printer=f"file:{slip}")
    async with app.run_test(size=SIZE) as pilot:
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
        assert "key.print_receipt" not in bar_words(app)  # not before it is paid
        await phone.sandbox_pay(pay.qr_url or "", "success")
        await paid_on_screen(pilot)
        await until(pilot, lambda: pay.desk is not None and pay.desk.receipt is not None)
        await settle(pilot)
        receipt = await receipt_of(ui_server, pay.order.order_no)
        outcome = shown(app, "#outcome")
        assert f"票据号 {receipt.receipt_no}　校验码 {receipt.check_code}" in outcome
        lines = [line.split() for line in screen_text(app).splitlines()]
        assert ["学费", "¥6,500.00"] in lines and ["住宿费", "¥1,200.00"] in lines
        assert ["合计", "¥7,700.00"] in lines
        assert bar_words(app) == ["key.done", "key.resend_receipt", "key.print_receipt"]
        assert app.screen.region.height <= SIZE[1]
        assert all(w.region.bottom <= SIZE[1] - 1 for w in app.screen.query("#pay-info > *"))

        before = len(await outbox(ui_server))
        await pilot.press("r")
        await said(pilot, "receipt.resent")
        assert len(await outbox(ui_server)) == before + 2
        await pilot.press("p")
        await said(pilot, "receipt.printed")
        assert receipt.check_code in slip.read_bytes().decode("gb18030")

        await pilot.press("enter")  # 返回 → 自助缴费
        await until(pilot, lambda: isinstance(app.screen, FeesScreen), what="自助缴费")


# ============================================================================ refunds
async def test_refunds_show_in_my_orders_the_receipt_and_fees(make_ui_app, ui_server):
    books_and_insurance = await paid_online(ui_server, CHEN, "教材费", "保险费")
    checkup = await paid_online(ui_server, CHEN, "体检费")
    await refund(ui_server, books_and_insurance, "教材费")  # part of it
    await refund(ui_server, checkup, "体检费")  # all of it
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await my_orders(pilot, ui_server, 2)
        assert order_status(app, books_and_insurance.order_no) == "已支付·部分退款"
        assert order_status(app, checkup.order_no) == "已支付·已退款"

        await open_receipt(pilot, books_and_insurance.order_no)
        lines = [line.split() for line in screen_text(app).splitlines()]
        assert ["缴费项目", "金额", "已退款"] in lines
        assert ["教材费", "¥420.00", "¥420.00"] in lines
        assert ["保险费", "¥150.00"] in lines
        assert ["合计", "¥570.00", "¥420.00"] in lines
        assert "部分退款：已退款 ¥420.00" in screen_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen))
        await open_receipt(pilot, checkup.order_no)
        assert "已退款：已退款 ¥60.00" in screen_text(app)

        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, OrdersScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MenuScreen))
        await open_fees(pilot)
        assert row_of(app, "体检费")["state"] == "已退款"
        assert row_of(app, "体检费")["mark"] == " - "
        assert row_of(app, "教材费")["state"] == "已退款"
        assert row_of(app, "保险费")["state"] == "已缴"
        await move_to(pilot, key_of(app, "体检费"))
        await pilot.press("space")
        assert fees(app).checked == {}
        assert message(app) == "该费用项已退款，无需缴纳"
        assert row_of(app, "体检费")["mark"] == " - "
