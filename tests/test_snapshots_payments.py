"""Snapshots of paying: 自助缴费, 确认订单, 扫码支付 and 我的订单, zh and en.

Every shot is byte-stable from run to run:

- the backend announces a fixed ``public_url``, so the QR's URL does not carry the
  port of this run's backend;
- the random sources the backend draws order numbers, pay tokens, trade numbers,
  receipt numbers and transaction ids from (``secrets`` in ``server.payments`` and
  ``server.gateway``) are replaced, in this test process, by seeded ``random.Random``
  stand-ins — the backend runs in a thread of this process, so it sees them;
- times come from the ManualClock (10:00 school time), captchas from a seed.

The pay screen follows its order with a long poll that never ends while the order
is open, so waits are on conditions (``until``), bounded, 0.05 s at a time — never on
every worker finishing, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from epay_tui.api.client import ApiClient, new_idempotency_key
from epay_tui.api.clock import ManualClock
from epay_tui.api.models import Order
from epay_tui.screens.confirm_order import ConfirmOrderScreen
from epay_tui.screens.dialog import Choice
from epay_tui.screens.fees import FeesScreen
from epay_tui.screens.login import LoginScreen
from epay_tui.screens.menu import MenuScreen
from epay_tui.screens.orders import OrdersScreen
from epay_tui.screens.pay import PayScreen
from epay_tui.screens.receipt import ReceiptScreen
from epay_tui.server.config import ServerConfig
from epay_tui.server.runner import BackgroundServer
from tests.conftest import NEW_ZHANG, SCHOOL_TZ, ZHANG, solve_login, ui_config
from tests.payment_flows import busy, log_in, open_fees, paid_online, refund, settle
from tests.pilot_helpers import snapshot, until

LANGS = pytest.mark.parametrize("lang", ["zh", "en"])
SIZE = (80, 24)
SMALL = (60, 20)
PUBLIC_URL = "http://127.0.0.1:8000"

RunBefore = Callable[[Pilot], Awaitable[None]]


# ---------------------------------------------------------------------------- stable ids
class SeededSecrets:
    """Stands in for the ``secrets`` module: the same calls, values from a seeded PRNG."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def token_bytes(self, nbytes: int = 32) -> bytes:
        return self._rng.randbytes(nbytes)

    def token_hex(self, nbytes: int = 32) -> str:
        return self.token_bytes(nbytes).hex()

    def token_urlsafe(self, nbytes: int = 32) -> str:
        return base64.urlsafe_b64encode(self.token_bytes(nbytes)).rstrip(b"=").decode("ascii")

    def randbelow(self, exclusive_upper_bound: int) -> int:
        return self._rng.randrange(exclusive_upper_bound)

    def randbits(self, k: int) -> int:
        return self._rng.getrandbits(k)

    def choice(self, seq: Any) -> Any:
        return self._rng.choice(seq)


@pytest.fixture(autouse=True)
def _stable_ids(monkeypatch) -> None:
    """Order numbers, pay tokens, trade/receipt numbers and transaction ids repeat."""
    from epay_tui.server import gateway, payments

    monkeypatch.setattr(payments, "secrets", SeededSecrets(20261126))
    monkeypatch.setattr(gateway, "secrets", SeededSecrets(20261127))


@pytest.fixture
def ui_server_config() -> ServerConfig:
    """The conftest's UI backend, announcing a fixed public URL (the QR's host)."""
    return ui_config(public_url=PUBLIC_URL)


@pytest.fixture
def zhang_password(ui_server: BackgroundServer) -> str:
    """张伟 has done the forced change already (on another day): his password now."""

    async def change() -> None:
        async with ApiClient(ui_server.url) as api:
            await solve_login(api, *ZHANG)
            await api.change_password(ZHANG[1], NEW_ZHANG)
            await api.logout()

    asyncio.run(change())
    return NEW_ZHANG


def on(screen_type: type, app: Any) -> bool:
    return isinstance(app.screen, screen_type)


# ---------------------------------------------------------------------------- flows
async def fees_for(pilot: Pilot, server: BackgroundServer, password: str) -> None:
    """张伟 from the login screen to 自助缴费."""
    await log_in(pilot, server, ZHANG[0], password)
    assert on(MenuScreen, pilot.app), type(pilot.app.screen).__name__
    await open_fees(pilot)


async def to_confirm(pilot: Pilot) -> None:
    """On 自助缴费: 全选, then ``enter`` (去支付) → 确认订单."""
    await pilot.press("a", "enter")
    await until(pilot, lambda: on(ConfirmOrderScreen, pilot.app), what="确认订单")
    await settle(pilot)


async def to_pay(pilot: Pilot, server: BackgroundServer, password: str) -> PayScreen:
    """Login → 自助缴费 → 全选 → 确认订单 → 提交支付 (微信支付): 扫码支付 with its QR."""
    await fees_for(pilot, server, password)
    await to_confirm(pilot)
    await pilot.press("enter")
    await until(
        pilot,
        lambda: on(PayScreen, pilot.app) and pilot.app.screen.qr_url is not None,
        what="扫码支付 with a QR",
    )
    await settle(pilot)
    return pilot.app.screen


async def pay_by_phone(server: BackgroundServer, qr_url: str, outcome: str, **kw: Any) -> None:
    """The payer's phone opens the pay link (sent to the backend's own address)."""
    assert qr_url.startswith(PUBLIC_URL + "/sandbox/pay/"), qr_url
    async with ApiClient(server.url) as phone:
        await phone.sandbox_pay(qr_url, outcome, **kw)


async def order_status(pilot: Pilot, status: str) -> None:
    """扫码支付 shows an order in ``status`` (from the long poll)."""
    app = pilot.app
    await until(
        pilot,
        lambda: on(PayScreen, app) and app.screen.order.status == status,
        what=f"扫码支付 with a {status} order",
    )
    await settle(pilot)


async def dialog(pilot: Pilot) -> None:
    await until(pilot, lambda: on(Choice, pilot.app), what="a dialog")
    await settle(pilot)


def shot(snap_compare, app, run_before: RunBefore, size: tuple[int, int] = SIZE) -> bool:
    return snapshot(snap_compare, app, run_before, size, settle=settle)


# ============================================================================ 自助缴费
@LANGS
def test_fees_fresh(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """The current tag open, the previous closed (查看收费项), cursor on 学费, 合计 ¥0.00."""

    async def run_before(pilot):
        await fees_for(pilot, ui_server, zhang_password)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_fees_select_all_on_a_mix(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """全选: 学费 and 住宿费 checked (财政票据 first), the college's advice on the line."""

    async def run_before(pilot):
        await fees_for(pilot, ui_server, zhang_password)
        await pilot.press("a")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_fees_mixed_receipt_dialog(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """学费 checked, then 教材费: the receipt-type dialog, 切换选择 focused, 取消 beside it."""

    async def run_before(pilot):
        await fees_for(pilot, ui_server, zhang_password)
        await pilot.press("space", "down", "down", "space")
        await dialog(pilot)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


async def ordered_elsewhere(pilot: Pilot, server: BackgroundServer, password: str) -> None:
    """Logged in here; meanwhile another device orders 学费 and 住宿费; then 自助缴费."""
    await log_in(pilot, server, ZHANG[0], password)
    async with ApiClient(server.url) as device:
        await solve_login(device, ZHANG[0], password)
        current = (await device.fees()).tags[0]
        fiscal = [i.id for i in current.items if i.receipt_type == "fiscal"]
        order = await device.create_order(fiscal, new_idempotency_key())
        await device.pay_order(order.order_no, "wechat")
    await open_fees(pilot)
    await pilot.press("up", "up")  # from 教材费 (first payable) to 学费, which is 支付中
    await settle(pilot)


@LANGS
def test_fees_in_order_elsewhere_detail(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """学费/住宿费 支付中 (an order from another device); on 学费 the line names its order."""

    async def run_before(pilot):
        await ordered_elsewhere(pilot, ui_server, zhang_password)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_fees_in_order_elsewhere_resume_dialog(
    snap_compare, make_ui_app, ui_server, zhang_password, lang
):
    """``space`` on an item 支付中: 继续支付 the order (named) or 取消."""

    async def run_before(pilot):
        await ordered_elsewhere(pilot, ui_server, zhang_password)
        await pilot.press("space")
        await dialog(pilot)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_fees_outside_payment_hours(
    snap_compare, make_ui_app, ui_server, zhang_password, clock: ManualClock, lang
):
    """22:30: 去支付 disabled, the banner says it opens at 08:00 (08:00-22:00)."""
    clock.set(datetime(2026, 11, 26, 22, 30, tzinfo=SCHOOL_TZ))

    async def run_before(pilot):
        await fees_for(pilot, ui_server, zhang_password)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


# ============================================================================ 确认订单
@LANGS
def test_confirm_order_alipay(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """学费 and 住宿费, 合计 ¥7,700.00, 财政票据, 收款方; ``2`` chose 支付宝."""

    async def run_before(pilot):
        await fees_for(pilot, ui_server, zhang_password)
        await to_confirm(pilot)
        await pilot.press("2")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


# ============================================================================ 扫码支付
@LANGS
def test_pay_qr(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """The QR (fixed URL), 微信支付, amount, 收款方, order number, 15:00 left, y/c/x."""

    async def run_before(pilot):
        await to_pay(pilot, ui_server, zhang_password)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_pay_backend_gone(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """The backend stops under 扫码支付: 网络繁忙, retrying by itself; the QR stays (valid)."""

    async def run_before(pilot):
        await to_pay(pilot, ui_server, zhang_password)
        await asyncio.to_thread(ui_server.stop)
        await until(pilot, lambda: pilot.app.screen.message.key == "pay.retrying", what="重试")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_confirm_order_backend_gone(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """提交支付 with the backend stopped: 网络繁忙, still on 确认订单 to try again."""

    async def run_before(pilot):
        await fees_for(pilot, ui_server, zhang_password)
        await to_confirm(pilot)
        await asyncio.to_thread(ui_server.stop)
        await pilot.press("enter")
        await until(pilot, lambda: pilot.app.screen.message.key == "app.busy", what="网络繁忙")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_pay_qr_terminal_too_small(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """60x20: no QR a phone could not read, a sentence asking for a larger terminal."""

    async def run_before(pilot):
        await to_pay(pilot, ui_server, zhang_password)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before, size=SMALL)


@LANGS
def test_pay_success(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """Paid from the phone: 支付成功, 订单号, 票据号, 交易号, 支付时间 10:00:00, 返回."""

    async def run_before(pilot):
        pay = await to_pay(pilot, ui_server, zhang_password)
        await pay_by_phone(ui_server, pay.qr_url or "", "success")
        await order_status(pilot, "paid")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_pay_cancelled_closed(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """``x`` then ``enter``: 订单已关闭, the items freed, 返回."""

    async def run_before(pilot):
        await to_pay(pilot, ui_server, zhang_password)
        await pilot.press("x")
        await dialog(pilot)
        await pilot.press("enter")
        await order_status(pilot, "closed")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_pay_claimed_slow_payment_waits(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """我已支付 while the bank is slow: the college's do-not-pay-again words, no QR."""

    async def run_before(pilot):
        pay = await to_pay(pilot, ui_server, zhang_password)
        await pay_by_phone(ui_server, pay.qr_url or "", "slow", delay_seconds=30)
        await pilot.press("y")
        await dialog(pilot)
        await pilot.press("enter")
        await order_status(pilot, "awaiting_confirmation")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_pay_channel_choice_dialog(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """``c``: 微信支付, 支付宝, 建行龙支付 over the QR screen."""

    async def run_before(pilot):
        await to_pay(pilot, ui_server, zhang_password)
        await pilot.press("c")
        await dialog(pilot)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


# ============================================================================ 我的订单
@LANGS
def test_orders_paid_and_open(
    snap_compare, make_ui_app, ui_server, zhang_password, clock: ManualClock, lang
):
    """The fiscal order paid at 10:00, the agency order open since 10:01, newest first."""

    async def run_before(pilot):
        app = pilot.app
        pay = await to_pay(pilot, ui_server, zhang_password)
        await pay_by_phone(ui_server, pay.qr_url or "", "success")
        await order_status(pilot, "paid")
        clock.advance(60)
        await pilot.press("enter")  # 返回: the other fees are checked already
        await until(
            pilot,
            lambda: on(FeesScreen, app) and bool(app.screen.checked) and not busy(app),
            what="自助缴费 with the rest checked",
        )
        await pilot.press("enter")
        await until(pilot, lambda: on(ConfirmOrderScreen, app), what="确认订单")
        await settle(pilot)
        await pilot.press("enter")
        await until(
            pilot,
            lambda: on(PayScreen, app) and app.screen.order.order_no != pay.order.order_no,
            what="the second 扫码支付",
        )
        await settle(pilot)
        await pilot.press("escape")  # leave it open
        await until(pilot, lambda: on(FeesScreen, app), what="自助缴费")
        await settle(pilot)
        await pilot.press("escape")
        await until(pilot, lambda: on(MenuScreen, app), what="menu")
        await pilot.press("2")
        await until(pilot, lambda: on(OrdersScreen, app), what="我的订单")
        await settle(pilot)
        await until(pilot, lambda: len(app.screen.orders) == 2, what="two orders listed")

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@pytest.mark.parametrize("lang", ["zh"])
def test_pay_success_with_a_printer(snap_compare, make_ui_app, ui_server, zhang_password, lang):
    """支付成功 on a kiosk with a printer: the receipt's items and 合计, R 补发票据 and
    P 打印缴费凭证 beside Enter 返回, all within 80x24."""

    async def run_before(pilot):
        pay = await to_pay(pilot, ui_server, zhang_password)
        await pay_by_phone(ui_server, pay.qr_url or "", "success")
        await order_status(pilot, "paid")

    app = make_ui_app(lang=lang, printer="file:/dev/null")
    assert shot(snap_compare, app, run_before)


# ============================================================================ receipts, refunds
async def refunded_orders(
    pilot: Pilot, server: BackgroundServer, password: str, clock: ManualClock
) -> tuple[Order, Order]:
    """张伟 paid 教材费 and 保险费 at 10:00 and 体检费 at 10:01 on his phone; then the
    helpdesk and the finance office gave 教材费 (part of the first) and 体检费 (all of the
    second) back. First the login screen has its captcha: the phone's login reads the
    newest captcha, which must not be that one."""
    app = pilot.app
    await until(
        pilot,
        lambda: on(LoginScreen, app) and app.screen.captcha_id is not None,
        what="login screen with its captcha",
    )
    zhang = (ZHANG[0], password)
    first = await paid_online(server, zhang, "教材费", "保险费")
    clock.advance(60)
    second = await paid_online(server, zhang, "体检费")
    await refund(server, first, "教材费")
    await refund(server, second, "体检费")
    return first, second


async def my_orders(pilot: Pilot, server: BackgroundServer, password: str, count: int) -> None:
    """张伟 logs in and opens 我的订单, ``count`` orders listed."""
    app = pilot.app
    await log_in(pilot, server, ZHANG[0], password)
    await pilot.press("2")
    await until(
        pilot,
        lambda: on(OrdersScreen, app) and len(app.screen.orders) == count,
        what=f"我的订单 with {count} orders",
    )
    await settle(pilot)


@pytest.mark.parametrize("lang", ["zh"])
def test_orders_refunded_and_partly_refunded(
    snap_compare, make_ui_app, ui_server, zhang_password, clock: ManualClock, lang
):
    """已支付·已退款 (体检费, 10:01) over 已支付·部分退款 (教材费 of 教材费 and 保险费)."""

    async def run_before(pilot):
        await refunded_orders(pilot, ui_server, zhang_password, clock)
        await my_orders(pilot, ui_server, zhang_password, 2)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)


@LANGS
def test_receipt_partly_refunded(
    snap_compare, make_ui_app, ui_server, zhang_password, clock: ManualClock, lang
):
    """``enter`` on the first order in 我的订单: 票据号, 校验码, the items with 已退款,
    合计, 收款方, 支付方式, 支付时间, 部分退款; R 补发票据 and Esc, no printer: no P."""

    async def run_before(pilot):
        app = pilot.app
        first, _ = await refunded_orders(pilot, ui_server, zhang_password, clock)
        await my_orders(pilot, ui_server, zhang_password, 2)
        table = app.screen.query_one("#orders", DataTable)
        table.move_cursor(row=table.get_row_index(first.order_no))
        await pilot.press("enter")
        await until(
            pilot,
            lambda: on(ReceiptScreen, app) and app.screen.desk.receipt is not None,
            what="电子票据",
        )
        await settle(pilot)

    assert shot(snap_compare, make_ui_app(lang=lang), run_before)
