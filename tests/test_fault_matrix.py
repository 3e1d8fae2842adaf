"""The fault matrix: the pay flow on a bad day, driven through the real app.

Each test is one row of the README's fault matrix. The backend is the real one on a
loopback port and a database file, stopped and started again where a row says so;
faults the backend cannot produce (an answer lost past the client's timeout, a
proxy's 502, a garbled body) are injected between the client and the real backend
by :class:`FaultyNetwork`, after the request has really been served where the row
says so. After each row: the store's invariants hold (no item paid twice, none in
two unfinished orders, every gateway payment on its order), and the screen says
what is true, in words.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from epay_tui.api.client import ApiClient
from epay_tui.api.clock import ManualClock
from epay_tui.app import make_app
from epay_tui.config import Settings
from epay_tui.screens import base
from epay_tui.screens.audit import AuditScreen
from epay_tui.screens.confirm_order import ConfirmOrderScreen
from epay_tui.screens.dialog import Choice
from epay_tui.screens.fees import FeesScreen
from epay_tui.screens.helpdesk_home import HelpdeskHome
from epay_tui.screens.orders import OrdersScreen
from epay_tui.screens.pay import PayScreen
from epay_tui.screens.profile import ProfileScreen
from epay_tui.screens.reconcile import ReconcileScreen
from epay_tui.screens.student_page import StudentPage
from epay_tui.server.config import ServerConfig
from epay_tui.server.runner import BackgroundServer
from epay_tui.widgets.texts import Tr
from tests.api_helpers import post_notify
from tests.conftest import ZHANG, sign, solve_login, ui_config
from tests.helpdesk_flows import search, staff_home
from tests.invariants import assert_store_invariants, rows, store_violations
from tests.payment_flows import (
    FISCAL,
    SIZE,
    confirm,
    decoded_qr,
    fee_states,
    log_in,
    open_fees,
    order_row,
    orders_of,
    paid_on_screen,
    qr_widget,
    submit,
    zhang_on_pay_screen,
)
from tests.pilot_helpers import message, screen_text, title, until

BUSY = "网络繁忙，请稍后重试"
RETRYING = "网络繁忙，自动重试中；二维码仍有效"  # 扫码支付 polls again by itself
ORDERS = r"/api/v1/orders"
PAY = r"/api/v1/orders/\d+/pay"
CLAIM = r"/api/v1/orders/\d+/claim-paid"
FOLLOW = r"/api/v1/orders/\d+"


# ---------------------------------------------------------------------------- the backend
class RevivableBackend:
    """The live backend on one loopback port and one database file, stopped and revived.

    Reads (``backend``) go to whichever process-in-a-thread is running now; the port
    and the database stay, so a client sees the same URL come back.
    """

    def __init__(self, config: ServerConfig, clock: ManualClock) -> None:
        self.clock = clock
        self.running: BackgroundServer | None = BackgroundServer(config, clock).start()
        self.config = self.running.config  # the port is now fixed
        self.url = self.running.url
        self.stops = 0

    @property
    def backend(self):
        assert self.running is not None, "the backend is down"
        return self.running.backend

    async def stop(self) -> None:
        """Stop serving (open connections and long polls end); the database stays."""
        assert self.running is not None
        server, self.running = self.running, None
        self.stops += 1
        await asyncio.to_thread(server.stop)

    async def start(self) -> None:
        assert self.running is None
        self.running = await asyncio.to_thread(
            lambda: BackgroundServer(self.config, self.clock).start()
        )

    def close(self) -> None:
        if self.running is not None:
            self.running.stop()


@pytest.fixture
def ui_server(tmp_path: Path, clock: ManualClock) -> Iterator[RevivableBackend]:
    """The UI backend on a database file, so that it can stop and come back."""
    revivable = RevivableBackend(ui_config(db_path=str(tmp_path / "epay.db")), clock)
    yield revivable
    revivable.close()


# ---------------------------------------------------------------------------- the network
Fault = Callable[[httpx.Request, httpx.AsyncBaseTransport], Awaitable[httpx.Response]]


class FaultyNetwork(httpx.AsyncBaseTransport):
    """The real connection to the live backend, with one-shot faults armed per request."""

    def __init__(self) -> None:
        self.real = httpx.AsyncHTTPTransport()
        self.armed: list[tuple[str, re.Pattern[str], Fault]] = []
        self.sprung: list[str] = []

    def arm(self, method: str, path: str, fault: Fault) -> None:
        """The next ``method`` request whose path matches ``path`` meets ``fault``."""
        self.armed.append((method, re.compile(path), fault))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for index, (method, path, fault) in enumerate(self.armed):
            if request.method == method and path.fullmatch(request.url.path):
                del self.armed[index]
                self.sprung.append(f"{method} {request.url.path}")
                return await fault(request, self.real)
        return await self.real.handle_async_request(request)

    async def aclose(self) -> None:
        await self.real.aclose()


async def served(request: httpx.Request, real: httpx.AsyncBaseTransport) -> httpx.Response:
    """Let the backend serve the request; return its answer, read in full."""
    response = await real.handle_async_request(request)
    content = await response.aread()
    await response.aclose()
    return httpx.Response(
        response.status_code, headers=response.headers, content=content, request=request
    )


async def answer_lost(request: httpx.Request, real: httpx.AsyncBaseTransport) -> httpx.Response:
    """Served, but the answer came after the client's timeout: a read timeout."""
    await served(request, real)
    raise httpx.ReadTimeout("the answer came after the client's timeout", request=request)


async def proxy_502(request: httpx.Request, real: httpx.AsyncBaseTransport) -> httpx.Response:
    """A proxy in front of the backend answers with its own error page; nothing served."""
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    return httpx.Response(502, headers={"Content-Type": "text/html"}, content=page)


async def garbled(request: httpx.Request, real: httpx.AsyncBaseTransport) -> httpx.Response:
    """Served, but the answer arrives garbled (a 200 that is not the contract's JSON)."""
    await served(request, real)
    return httpx.Response(
        200, headers={"Content-Type": "application/json"}, content=b'{"order_no": \x00\xff'
    )


async def client_bug(request: httpx.Request, real: httpx.AsyncBaseTransport) -> httpx.Response:
    """Something in the client's own stack fails in a way nobody foresaw."""
    raise RuntimeError("an unforeseen failure below the API client")


def then_backend_stops(backend: RevivableBackend) -> Fault:
    """Served, and the backend goes down right after answering."""

    async def fault(request: httpx.Request, real: httpx.AsyncBaseTransport) -> httpx.Response:
        response = await served(request, real)
        await backend.stop()
        return response

    return fault


@pytest.fixture
async def network() -> AsyncIterator[FaultyNetwork]:
    net = FaultyNetwork()
    yield net
    await net.aclose()


@pytest.fixture
def helpdesk(ui_server: RevivableBackend, clock: ManualClock):
    """``helpdesk()`` -> the real app at a helpdesk counter, on the live backend."""

    def _make():
        return make_app(Settings(server=ui_server.url, lang="zh", helpdesk=True), None, clock)

    return _make


@pytest.fixture
def kiosk(ui_server: RevivableBackend, clock: ManualClock, network: FaultyNetwork):
    """``kiosk()`` -> the real app, its HTTP going through ``network`` to the live backend."""

    def _make():
        return make_app(
            Settings(server=ui_server.url, lang="zh"),
            ApiClient(ui_server.url, transport=network),
            clock,
        )

    return _make


# ---------------------------------------------------------------------------- steps
async def on_confirm(pilot: Pilot, backend: RevivableBackend, password: str) -> None:
    """Logged in as 张伟, 自助缴费, 全选 (tuition and accommodation), 确认订单."""
    await log_in(pilot, backend, ZHANG[0], password)
    await open_fees(pilot)
    await pilot.press("a")
    await confirm(pilot)


async def busy_on(pilot: Pilot, screen: type) -> None:
    """网络繁忙 on ``screen``: 扫码支付 adds that it retries by itself, the rest ask to."""
    app = pilot.app
    words = RETRYING if screen is PayScreen else BUSY
    await until(
        pilot,
        lambda: isinstance(app.screen, screen) and message(app) == words,
        what=f"{words} on {screen.__name__}",
    )


def the_one_order(backend: RevivableBackend) -> dict[str, Any]:
    """张伟 has exactly one order; it is returned."""
    (order,) = orders_of(backend, ZHANG[0])
    return order


def assert_holds(backend: RevivableBackend) -> None:
    """No item paid twice or in two unfinished orders; no closed order's trade left open."""
    assert store_violations(backend) == {}
    success = rows(
        backend,
        "SELECT t.trade_no FROM gw_trades t JOIN orders o USING(order_no)"
        " WHERE t.state='SUCCESS' AND (o.status <> 'paid' OR o.transaction_id <> t.transaction_id)",
    )
    assert success == [], "a gateway payment not on its order"


def receipts_sent(backend: RevivableBackend, order_no: str) -> list[str]:
    outbox = rows(backend, "SELECT channel, body FROM outbox")
    return sorted(m["channel"] for m in outbox if order_no in m["body"])


async def paid_once(pilot: Pilot, backend: RevivableBackend, order_no: str) -> None:
    """支付成功 on screen with the receipt number; one receipt by SMS and e-mail."""
    await paid_on_screen(pilot)
    row = order_row(backend, order_no)
    assert row["status"] == "paid"
    assert row["receipt_no"] in pilot.app.screen.query_one("#outcome").render().plain
    assert message(pilot.app) == ""
    assert receipts_sent(backend, order_no) == ["email", "sms"]
    assert set(fee_states(backend, ZHANG[0]).items()) >= {(name, "paid") for name in FISCAL}
    assert_holds(backend)


# ============================================================================ data screens
RETRYING_ALONE = re.compile(r"网络繁忙，\d+ 秒后自动重试（按任意键立即重试）")


def profile_filled(app: Any) -> bool:
    return app.screen.query_one("#phone", Input).value == "13800000001"


def fees_filled(app: Any) -> bool:
    return app.screen.fees is not None and app.screen.query_one(DataTable).row_count > 1


def orders_filled(app: Any) -> bool:
    return message(app) == "还没有订单"


DATA_SCREENS = pytest.mark.parametrize(
    ("key", "screen", "filled"),
    [
        ("1", FeesScreen, fees_filled),
        ("2", OrdersScreen, orders_filled),
        ("3", ProfileScreen, profile_filled),
    ],
    ids=["自助缴费", "我的订单", "个人信息"],
)


def back(app: Any, filled: Callable[[Any], bool]) -> bool:
    """The screen shows the backend's answer, and 网络繁忙 is gone."""
    return filled(app) and not RETRYING_ALONE.fullmatch(message(app))


async def busy_then_back(pilot: Pilot, backend: RevivableBackend, key: str, screen: type):
    """From the menu with the backend stopped: ``key`` opens ``screen``, which says it
    retries by itself; then the backend comes back."""
    app = pilot.app
    await backend.stop()
    await pilot.press(key)
    await until(
        pilot,
        lambda: isinstance(app.screen, screen) and RETRYING_ALONE.fullmatch(message(app)),
        what=f"网络繁忙 retrying on {screen.__name__}",
    )
    await backend.start()


@DATA_SCREENS
async def test_a_data_screen_fills_by_itself_when_the_backend_is_back(
    kiosk, ui_server, zhang_changed, key, screen, filled
):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await busy_then_back(pilot, ui_server, key, screen)
        await until(pilot, lambda: back(app, filled), what="filled by itself", timeout=20)
        assert "网络繁忙" not in screen_text(app)


@DATA_SCREENS
async def test_a_data_screen_fetches_again_at_once_on_a_key(
    kiosk, ui_server, zhang_changed, monkeypatch, key, screen, filled
):
    monkeypatch.setattr(base, "RETRY_DELAYS", (600,))  # only the key can bring it now
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, ZHANG[0], zhang_changed)
        await busy_then_back(pilot, ui_server, key, screen)
        await pilot.press("shift")  # changes nothing on any of these screens
        await until(pilot, lambda: back(app, filled), what="filled after the key")
        assert "网络繁忙" not in screen_text(app)


async def nothing_first(pilot: Pilot) -> None:
    """The helpdesk's home as it is after the staff login."""


async def found_zhang(pilot: Pilot) -> None:
    await search(pilot, ZHANG[0])


async def type_a_search(pilot: Pilot) -> None:
    await pilot.press(*"2024", "enter")


async def reconcile_today(pilot: Pilot) -> None:
    await pilot.press("f5")
    await until(pilot, lambda: isinstance(pilot.app.screen, ReconcileScreen), what="对账")
    await pilot.press("enter")  # today's date
    await until(pilot, lambda: isinstance(pilot.app.screen, Choice), what="the question")
    await pilot.press("enter")  # 确认


async def press_f6(pilot: Pilot) -> None:
    await pilot.press("f6")


async def press_enter(pilot: Pilot) -> None:
    await pilot.press("enter")


def table_rows(app: Any, table_id: str) -> int:
    return app.screen.query_one(f"#{table_id}", DataTable).row_count


@pytest.mark.parametrize(
    ("before", "opening", "screen", "filled"),
    [
        (nothing_first, type_a_search, HelpdeskHome, lambda app: table_rows(app, "students") > 3),
        (found_zhang, press_enter, StudentPage, lambda app: app.screen.detail is not None),
        (nothing_first, press_f6, AuditScreen, lambda app: table_rows(app, "audit") > 0),
        (
            nothing_first,
            reconcile_today,
            ReconcileScreen,
            lambda app: app.screen.query_one("#reconcile-result", Tr).key != "",
        ),
    ],
    ids=["search", "student", "audit", "reconcile"],
)
async def test_a_helpdesk_page_fills_by_itself_when_the_backend_is_back(
    helpdesk, ui_server, before, opening, screen, filled
):
    app = helpdesk()
    async with app.run_test(size=SIZE) as pilot:
        await staff_home(pilot, ui_server)
        await before(pilot)
        await ui_server.stop()
        await opening(pilot)
        await until(
            pilot,
            lambda: isinstance(app.screen, screen) and RETRYING_ALONE.fullmatch(message(app)),
            what=f"网络繁忙 retrying on {screen.__name__}",
        )
        await ui_server.start()
        await until(pilot, lambda: back(app, filled), what="filled by itself", timeout=20)
        assert "网络繁忙" not in screen_text(app)


# ============================================================================ backend stops
async def test_backend_stops_before_the_order(kiosk, ui_server, zhang_changed):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        await on_confirm(pilot, ui_server, zhang_changed)
        await ui_server.stop()
        await pilot.press("enter")
        await busy_on(pilot, ConfirmOrderScreen)
        await ui_server.start()
        assert orders_of(ui_server, ZHANG[0]) == []
        pay = await submit(pilot)
        assert pay.order.order_no == the_one_order(ui_server)["order_no"]
        assert decoded_qr(app) == the_one_order(ui_server)["qr_url"]
    assert_holds(ui_server)


async def test_backend_stops_after_the_order_before_the_qr(
    kiosk, ui_server, network, zhang_changed
):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        await on_confirm(pilot, ui_server, zhang_changed)
        network.arm("POST", ORDERS, then_backend_stops(ui_server))
        await pilot.press("enter")
        await busy_on(pilot, ConfirmOrderScreen)
        await ui_server.start()
        made = the_one_order(ui_server)
        assert (made["status"], made["qr_url"]) == ("open", None)
        pay = await submit(pilot)  # the same Idempotency-Key finds the same order
        assert pay.order.order_no == made["order_no"]
        assert decoded_qr(app) == the_one_order(ui_server)["qr_url"]
    assert network.sprung == ["POST /api/v1/orders"]
    assert_holds(ui_server)


async def test_backend_stops_after_the_qr(kiosk, ui_server, zhang_changed, phone):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        await on_confirm(pilot, ui_server, zhang_changed)
        pay = await submit(pilot)
        number, qr_url = pay.order.order_no, pay.qr_url
        await ui_server.stop()
        await busy_on(pilot, PayScreen)
        assert title(app) == "扫码支付" and qr_widget(app).display  # the QR is still good
        await ui_server.start()
        await phone.sandbox_pay(qr_url, "success")
        await paid_once(pilot, ui_server, number)


async def test_backend_stops_after_payment_before_the_notify(
    kiosk, ui_server, zhang_changed, phone, clock
):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        await on_confirm(pilot, ui_server, zhang_changed)
        pay = await submit(pilot)
        number = pay.order.order_no
        await phone.sandbox_pay(pay.qr_url, "success", notify="delay", delay_seconds=5)
        await ui_server.stop()
        await busy_on(pilot, PayScreen)
        clock.advance(6)  # the notify fell due while the backend was down
        await ui_server.start()
        await paid_once(pilot, ui_server, number)


async def test_backend_stops_after_payment_with_the_notify_lost_then_i_have_paid(
    kiosk, ui_server, zhang_changed, phone
):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        await on_confirm(pilot, ui_server, zhang_changed)
        pay = await submit(pilot)
        number = pay.order.order_no
        await phone.sandbox_pay(pay.qr_url, "success", notify="drop")
        await ui_server.stop()
        await pilot.press("y", "enter")  # 我已支付 → 确认
        await until(pilot, lambda: message(app) == BUSY, what="我已支付 unanswered: try again")
        assert title(app) == "扫码支付"
        await ui_server.start()
        assert order_row(ui_server, number)["status"] == "open"
        await pilot.press("y", "enter")
        await paid_once(pilot, ui_server, number)


# ============================================================================ the network
@pytest.mark.parametrize(
    ("fault", "served"),
    [(answer_lost, True), (garbled, True), (proxy_502, False)],
    ids=["answer-lost", "garbled", "proxy-502"],
)
async def test_a_bad_answer_to_the_order(kiosk, ui_server, network, zhang_changed, fault, served):
    """Served or not, 网络繁忙; 提交支付 again gives the one order (same Idempotency-Key)."""
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        await on_confirm(pilot, ui_server, zhang_changed)
        network.arm("POST", ORDERS, fault)
        await pilot.press("enter")
        await busy_on(pilot, ConfirmOrderScreen)
        made = orders_of(ui_server, ZHANG[0])
        assert len(made) == (1 if served else 0)
        pay = await submit(pilot)
        assert pay.order.order_no == the_one_order(ui_server)["order_no"]
    assert network.sprung == ["POST /api/v1/orders"]
    assert_holds(ui_server)


async def test_qr_made_but_its_answer_lost(kiosk, ui_server, network, zhang_changed):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        await on_confirm(pilot, ui_server, zhang_changed)
        network.arm("POST", PAY, answer_lost)
        await pilot.press("enter")
        await busy_on(pilot, ConfirmOrderScreen)
        first_qr = the_one_order(ui_server)["qr_url"]
        assert first_qr is not None
        await submit(pilot)
        assert decoded_qr(app) == first_qr  # the same trade, not a second one
        trades = rows(ui_server, "SELECT state FROM gw_trades")
        assert [t["state"] for t in trades] == ["NOTPAY"]
    assert_holds(ui_server)


async def test_an_unforeseen_client_failure_says_so_and_lets_the_student_try_again(
    kiosk, ui_server, network, zhang_changed, caplog
):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        await on_confirm(pilot, ui_server, zhang_changed)
        network.arm("POST", ORDERS, client_bug)
        await pilot.press("enter")
        await until(pilot, lambda: message(app) == "系统繁忙，请稍后重试", what="系统繁忙")
        assert "Traceback" not in screen_text(app)
        assert orders_of(ui_server, ZHANG[0]) == []
        await submit(pilot)  # 提交支付 works again
        assert len(orders_of(ui_server, ZHANG[0])) == 1
    assert any("unforeseen failure" in r.getMessage() or r.exc_info for r in caplog.records)
    assert_holds(ui_server)


@pytest.mark.parametrize("fault", [proxy_502, garbled], ids=["proxy-502", "garbled"])
async def test_a_bad_long_poll_answer_then_paid(
    kiosk, ui_server, network, zhang_changed, phone, fault
):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        await on_confirm(pilot, ui_server, zhang_changed)
        pay = await submit(pilot)
        number = pay.order.order_no
        network.arm("GET", FOLLOW, fault)
        await ui_server.stop()  # the long poll in flight ends; the next one meets the fault
        await ui_server.start()
        await busy_on(pilot, PayScreen)
        await until(pilot, lambda: message(app) == "", what="网络繁忙 gone once polls work")
        await phone.sandbox_pay(pay.qr_url, "success")
        await paid_once(pilot, ui_server, number)
    assert network.sprung == [f"GET /api/v1/orders/{number}"]


async def test_i_have_paid_served_but_its_answer_lost(
    kiosk, ui_server, network, zhang_changed, phone
):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        await on_confirm(pilot, ui_server, zhang_changed)
        pay = await submit(pilot)
        number = pay.order.order_no
        await phone.sandbox_pay(pay.qr_url, "success", notify="drop")
        network.arm("POST", CLAIM, answer_lost)
        await pilot.press("y", "enter")
        await paid_once(pilot, ui_server, number)  # the truth, not 网络繁忙
    assert network.sprung == [f"POST /api/v1/orders/{number}/claim-paid"]


# ============================================================================ notifies
async def test_notify_dropped_and_nobody_says_paid(kiosk, ui_server, zhang_changed, phone, clock):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
        number = pay.order.order_no
        await phone.sandbox_pay(pay.qr_url, "success", notify="drop")
        clock.set(pay.order.expires_at)  # at expiry the backend asks the gateway first
        await paid_once(pilot, ui_server, number)


async def test_notify_duplicated(kiosk, ui_server, zhang_changed, phone):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
        number = pay.order.order_no
        await phone.sandbox_pay(pay.qr_url, "success", notify="duplicate")
        await paid_once(pilot, ui_server, number)
        await until(
            pilot,
            lambda: not rows(ui_server, "SELECT 1 FROM gw_notifies WHERE state='pending'"),
            what="both notifies delivered",
        )
        assert receipts_sent(ui_server, number) == ["email", "sms"]


async def test_notify_delayed_past_expiry(kiosk, ui_server, zhang_changed, phone, clock):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
        number = pay.order.order_no
        ttl = (pay.order.expires_at - clock.now()).total_seconds()
        await phone.sandbox_pay(pay.qr_url, "success", notify="delay", delay_seconds=int(ttl) + 60)
        clock.set(pay.order.expires_at)
        await paid_once(pilot, ui_server, number)
        clock.advance(120)  # the late notify arrives and changes nothing
        await until(
            pilot,
            lambda: not rows(ui_server, "SELECT 1 FROM gw_notifies WHERE state='pending'"),
            what="the late notify delivered",
        )
        assert receipts_sent(ui_server, number) == ["email", "sms"]
        assert order_row(ui_server, number)["status"] == "paid"
        assert_holds(ui_server)


@pytest.fixture
def refusing_port() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_notify_unanswered_is_sent_again(
    kiosk, ui_server, zhang_changed, phone, clock, refusing_port
):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
        number = pay.order.order_no
        backend = ui_server.backend
        reachable, backend.internal_url = backend.internal_url, refusing_port
        await phone.sandbox_pay(pay.qr_url, "success")  # its notify finds nobody
        # sent by the payment's request or by the sweeper, whichever claims it first
        await until(
            pilot,
            lambda: rows(ui_server, "SELECT state, attempts FROM gw_notifies")
            == [{"state": "pending", "attempts": 1}],
            what="the first attempt refused, the notify due again",
        )
        assert order_row(ui_server, number)["status"] == "open"
        assert title(app) == "扫码支付"
        backend.internal_url = reachable
        clock.advance(NOTIFY_RETRY_SPACING[0] + 1)
        await paid_once(pilot, ui_server, number)
        (notify,) = rows(ui_server, "SELECT state, attempts FROM gw_notifies")
        assert notify == {"state": "sent", "attempts": 1}


NOTIFY_RETRY_SPACING = (15, 15, 30, 180, 600, 1800, 3600)
"""As the README says, written here rather than read from the gateway's code."""


def test_a_notify_never_answered_is_given_up_after_the_last_retry(ui_server, clock):
    gateway = ui_server.backend.sandbox
    with ui_server.backend.store.write() as conn:
        conn.execute("INSERT INTO gw_notifies(trade_no, due_at, state) VALUES ('T1', 0, 'sent')")
    states, spacing = [], []
    for _ in range(len(NOTIFY_RETRY_SPACING) + 1):
        gateway.notify_unanswered(1)
        (row,) = rows(ui_server, "SELECT state, attempts, due_at FROM gw_notifies")
        states.append((row["state"], row["attempts"]))
        if row["state"] == "pending":
            spacing.append(round(row["due_at"] - clock.now().timestamp()))
    retries = [("pending", n) for n in range(1, len(NOTIFY_RETRY_SPACING) + 1)]
    assert states == [*retries, ("failed", len(NOTIFY_RETRY_SPACING))]
    assert tuple(spacing) == NOTIFY_RETRY_SPACING


def notify_of(backend: RevivableBackend, order_no: str, **changes: Any) -> bytes:
    """The body the gateway would send for this order's paid trade, with ``changes``."""
    (trade,) = rows(backend, "SELECT * FROM gw_trades WHERE order_no=?", order_no)
    body = json.loads(backend.backend.sandbox.notify_body(trade))
    body.update(changes)
    return json.dumps(body, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("forgery", "status", "code"),
    [("bad-signature", 401, "BAD_SIGNATURE"), ("wrong-amount", 400, "AMOUNT_MISMATCH")],
)
async def test_forged_notify_pays_nothing(
    kiosk, ui_server, zhang_changed, phone, forgery, status, code
):
    app = kiosk()
    async with app.run_test(size=SIZE) as pilot:
        pay = await zhang_on_pay_screen(pilot, ui_server, zhang_changed)
        number = pay.order.order_no
        await phone.sandbox_pay(pay.qr_url, "success", notify="drop")  # a trade to imitate
        if forgery == "bad-signature":
            body = notify_of(ui_server, number)
            signature = "0" * 64
        else:  # signed with the real key (a gateway bug, or the key leaked): amount of 1 fen
            body = notify_of(ui_server, number, amount=1)
            signature = sign(ui_server.backend.notify_secret, body)
        answer = await post_notify(ui_server, body, signature)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
        await pilot.pause()
        row = order_row(ui_server, number)
        assert (row["status"], row["receipt_no"]) == ("open", None)
        assert title(app) == "扫码支付" and qr_widget(app).display
        assert receipts_sent(ui_server, number) == []
        await pilot.press("y", "enter")  # the real payment is found at the gateway
        await paid_once(pilot, ui_server, number)
        amounts = rows(ui_server, "SELECT amount_paid, amount_due FROM fee_items")
        assert all(a["amount_paid"] in (0, a["amount_due"]) for a in amounts)


# ============================================================================ three sessions
async def test_two_kiosks_and_a_phone_on_one_student(
    kiosk, ui_server, zhang_changed, phone, network
):
    first, second = kiosk(), kiosk()
    async with first.run_test(size=SIZE) as one, second.run_test(size=SIZE) as two:
        await on_confirm(one, ui_server, zhang_changed)
        pay = await submit(one)
        number = pay.order.order_no
        async with ApiClient(ui_server.url) as browser:  # the student's own phone
            await solve_login(browser, ZHANG[0], zhang_changed)
            fees = await browser.fees()
            in_order = [i for t in fees.tags for i in t.items if i.state == "in_order"]
            assert sorted(i.name for i in in_order) == sorted(FISCAL)
            assert {i.order_no for i in in_order} == {number}
            await log_in(two, ui_server, ZHANG[0], zhang_changed)
            await until(two, lambda: isinstance(second.screen, PayScreen), what="kiosk 2 resumes")
            assert second.screen.order.order_no == number
            assert decoded_qr(second) == decoded_qr(first) == pay.qr_url
            await phone.sandbox_pay(pay.qr_url, "success")
            await paid_once(one, ui_server, number)
            await paid_once(two, ui_server, number)
            assert (await browser.get_order(number)).status == "paid"
        assert len(orders_of(ui_server, ZHANG[0])) == 1
        await one.press("enter")
        await until(one, lambda: isinstance(first.screen, FeesScreen), what="自助缴费 again")
    assert_store_invariants(ui_server, settled=False)
