"""Pilot flows of paying: 自助缴费, 确认订单, 扫码支付 and 我的订单 against the live backend.

The sandbox is driven as a phone would (``ApiClient.sandbox_pay`` on the QR's URL);
the backend's state is read in-process. The pay screen follows its order with a long
poll that never ends while the order is open, so waits there are on conditions
(``until``), never on every worker finishing, and never a fixed sleep.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable, RadioSet

from epay_tui.api.client import ApiClient, new_idempotency_key
from epay_tui.api.clock import ManualClock
from epay_tui.screens.dialog import Choice
from epay_tui.screens.fees import FeesScreen
from epay_tui.screens.menu import MenuScreen
from epay_tui.screens.orders import OrdersScreen
from epay_tui.screens.pay import PayScreen
from epay_tui.screens.profile import ProfileScreen
from epay_tui.server.runner import BackgroundServer
from epay_tui.widgets.texts import TrButton
from tests.conftest import LI, NEW_ZHANG, SCHOOL_TZ, TEN_AM, ZHANG, ui_config
from tests.payment_flows import (
    AGENCY,
    CLOSED_LINE,
    CONTINUE_REST,
    CURRENT,
    DO_NOT_PAY_AGAIN,
    FISCAL,
    FISCAL_FIRST,
    IN_PROGRESS,
    MIXED,
    PAYEE,
    PREVIOUS,
    PROFILE_REASON,
    SIZE,
    busy,
    checked,
    confirm,
    cursor_key,
    decoded_qr,
    dialog_buttons,
    dialog_text,
    fee_states,
    fees,
    key_of,
    log_in,
    move_to,
    open_fees,
    order_item_names,
    order_row,
    orders_of,
    paid_on_screen,
    pay_screen_for,
    qr_widget,
    row_of,
    row_text,
    rows,
    settle,
    submit,
    total,
    zhang_on_pay_screen,
)
from tests.pilot_helpers import message, plain, screen_text, shown, title, until


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
        app.post_message(event)  # as the terminal driver delivers a key


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
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
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
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
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
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
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
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
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
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
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
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
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
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
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
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
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
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
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


# ============================================================================ clock
@pytest.mark.parametrize("skew_minutes", [20, -20])
async def test_a_kiosk_with_a_wrong_clock_counts_down_by_the_backends(
    ui_server, zhang_changed, skew_minutes
):
    """The countdown follows the backend's clock (from /meta), not a kiosk set wrong."""
    from epay_tui.app import make_app
    from epay_tui.config import Settings

    kiosk_clock = ManualClock(TEN_AM + timedelta(minutes=skew_minutes))
    app = make_app(Settings(server=ui_server.url), ApiClient(ui_server.url), kiosk_clock)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await open_fees(pilot)
        await pay_screen_for(pilot)
        assert app.server_offset == timedelta(minutes=-skew_minutes)
        assert shown(app, "#countdown") == "剩余支付时间 15:00"
