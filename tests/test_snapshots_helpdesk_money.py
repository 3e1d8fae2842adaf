"""Snapshots of the helpdesk's money, 80x24, zh and en: 现场缴费, 退费申请, 退费审批 (the
README's screenshot), 日结, 欠费 and 差异.

Byte-stable as the payment snapshots are: the backend's random sources (order, trade,
receipt, refund and transaction numbers) are seeded stand-ins in this process, times come
from the ManualClock (10:00 school time, moved only here), captchas from a seed, and the
documents folder is under a fixed home. Waits are bounded loops on conditions. What
happened before the shot is done over the API before the app starts (the app's captcha
is then the seed's first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from epay_tui.api.client import ApiClient, new_idempotency_key
from epay_tui.api.clock import ManualClock
from epay_tui.screens.arrears import ArrearsScreen
from epay_tui.screens.cashier_report import CashierReportScreen
from epay_tui.screens.counter_payment import CounterPaymentScreen
from epay_tui.screens.discrepancies import DiscrepanciesScreen
from epay_tui.screens.helpdesk_home import HelpdeskHome
from epay_tui.screens.refund_approval import RefundApprovalScreen
from epay_tui.screens.refund_request import RefundRequestScreen
from epay_tui.screens.student_page import StudentPage
from tests import helpdesk_flows
from tests.conftest import CHEN, STAFF, ZHANG, solve_login
from tests.helpdesk_flows import opened, paid_twice
from tests.pilot_helpers import fill, settle_workers, snapshot, until
from tests.test_snapshots_payments import SeededSecrets

LANGS = pytest.mark.parametrize("lang", ["zh", "en"])
SIZE = (80, 24)
FINANCE = ("finance01", "Finance2026")

RunBefore = Callable[[Pilot], Awaitable[None]]


@pytest.fixture(autouse=True)
def _stable(monkeypatch) -> None:
    """Numbers the backend draws repeat; the documents folder is ``/home/staff/Documents``."""
    from epay_tui.server import gateway, money, payments

    monkeypatch.setattr(payments, "secrets", SeededSecrets(20261126))
    monkeypatch.setattr(gateway, "secrets", SeededSecrets(20261127))
    monkeypatch.setattr(money, "secrets", SeededSecrets(20261128))
    monkeypatch.setenv("HOME", "/home/staff")


def shot(snap_compare, app, run_before: RunBefore) -> bool:
    return snapshot(snap_compare, app, run_before, SIZE)


def on(pilot: Pilot, kind: type) -> bool:
    return isinstance(pilot.app.screen, kind)


# ----------------------------------------------------------------------------- setup
async def zhang_items(staff: ApiClient) -> dict[str, str]:
    detail = await staff.staff_student(ZHANG[0])
    return {i.name: i.id for t in detail.fees.tags for i in t.items if i.state == "unpaid"}


# ----------------------------------------------------------------------------- flows
async def staff_home(pilot: Pilot, server, account=STAFF) -> None:
    await helpdesk_flows.submit_staff_login(pilot, server, account)
    await until(pilot, lambda: on(pilot, HelpdeskHome), "服务台")
    await settle_workers(pilot)


async def student_page(pilot: Pilot, server, username: str) -> None:
    await staff_home(pilot, server)
    await helpdesk_flows.search(pilot, username)
    await pilot.press("enter")
    await until(
        pilot, lambda: on(pilot, StudentPage) and pilot.app.screen.detail is not None, username
    )
    await settle_workers(pilot)


# ----------------------------------------------------------------------------- shots
@LANGS
def test_counter_payment(snap_compare, make_ui_app, ui_server, lang):
    """张伟's unpaid fees, 学费 and 住宿费 checked (合计 ¥7,700.00), POS with its slip number."""

    async def run_before(pilot):
        await student_page(pilot, ui_server, ZHANG[0])
        await opened(pilot, "f5", CounterPaymentScreen, "counter-items", 5)
        await pilot.press("space", "down", "space", "2", *"POS20261126A")
        await pilot.press("shift+tab", "shift+tab")  # back on the list
        await until(pilot, lambda: pilot.app.focused.id == "counter-items", "the list")

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)


@LANGS
def test_refund_request(snap_compare, make_ui_app, ui_server, lang):
    """陈静's paid 教材费 and the duplicate payment of that order; the item checked, 原因 typed."""

    asyncio.run(paid_twice(ui_server, "textbook"))

    async def run_before(pilot):
        await student_page(pilot, ui_server, CHEN[0])
        await opened(pilot, "f9", RefundRequestScreen, "refund-items", 2)
        await pilot.press("space")
        await fill(pilot, reason="退学，退还教材费")
        await settle_workers(pilot)

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)


@LANGS
def test_refund_approval(snap_compare, make_ui_app, ui_server, clock: ManualClock, lang):
    """finance01 sees helpdesk01's two requests: an item of a 微信支付 order and the duplicate
    payment's trade; the first highlighted, its order and reason below."""

    async def before():
        order, trade_no = await paid_twice(ui_server, "textbook")
        async with ApiClient(ui_server.url) as staff:
            await solve_login(staff, *STAFF)
            await staff.staff_request_refund(
                order.order_no, "重复缴费，原路退回", new_idempotency_key(), trade_no=trade_no
            )
            clock.advance(300)
            [item] = [i.id for i in order.items]
            await staff.staff_request_refund(
                order.order_no, "退学，退还教材费", new_idempotency_key(), item_ids=[item]
            )

    asyncio.run(before())

    async def run_before(pilot):
        await staff_home(pilot, ui_server, FINANCE)
        await opened(pilot, "f3", RefundApprovalScreen, "refunds", 2)
        await settle_workers(pilot)

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)


@LANGS
def test_cashier_report(snap_compare, make_ui_app, ui_server, clock: ManualClock, lang):
    """helpdesk01's day: 学费 and 住宿费 in cash at 10:00, 保险费 by POS at 10:05."""

    async def before():
        async with ApiClient(ui_server.url) as staff:
            await solve_login(staff, *STAFF)
            ids = await zhang_items(staff)
            key = new_idempotency_key()
            await staff.staff_counter_payment(
                ZHANG[0], [ids["学费"], ids["住宿费"]], "cash", None, key
            )
            clock.advance(300)
            key = new_idempotency_key()
            await staff.staff_counter_payment(ZHANG[0], [ids["保险费"]], "pos", "POS7731", key)

    asyncio.run(before())

    async def run_before(pilot):
        await staff_home(pilot, ui_server)
        await opened(pilot, "f4", CashierReportScreen, "cashier-payments", 2)

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)


@LANGS
def test_arrears(snap_compare, make_ui_app, ui_server, lang):
    """The current year's arrears, most owed first, the totals, and the export path."""

    async def run_before(pilot):
        await staff_home(pilot, ui_server)
        await opened(pilot, "f7", ArrearsScreen, "arrears", 4)
        field = pilot.app.screen.query_one("#export-path", Input)
        await until(pilot, lambda: field.value.endswith(".csv"), "the default path")

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)


@LANGS
def test_discrepancies(snap_compare, make_ui_app, ui_server, lang):
    """陈静 also paid her 保险费 order a second time: one open discrepancy to give back."""

    asyncio.run(paid_twice(ui_server, "insurance"))

    async def run_before(pilot):
        await staff_home(pilot, ui_server)
        await opened(pilot, "f8", DiscrepanciesScreen, "discrepancies", 1)

    assert shot(snap_compare, make_ui_app(lang=lang, helpdesk=True), run_before)
