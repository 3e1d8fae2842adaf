"""The gateway's refunds through the ``Gateway`` protocol, as the backend will ask them
(api-money.md, *Sandbox additions*): a paid trade gives back up to its amount, once per
refund number, the same number answering the same result — on both databases, and
racing from two workers."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

from epay_tui.api.client import ApiClient

from .conftest import CHEN, TEN_AM

ON_BOTH_DATABASES = True  # SQLite, and PostgreSQL with two workers (conftest)


async def paid_trade(login, item: str = "教材费") -> tuple[str, int]:
    """CHEN pays ``item`` in the sandbox: the trade's number and amount."""
    api: ApiClient = await login(*CHEN)
    fees = await api.fees()
    fee = next(i for t in fees.tags for i in t.items if i.name == item and i.state == "unpaid")
    order = await api.create_order([fee.id], secrets.token_hex(8))
    qr = await api.pay_order(order.order_no, "wechat")
    await api.sandbox_pay(qr.qr_url, "success")
    trade = next(
        t
        for t in (await api.sandbox_statement(TEN_AM.date())).trades
        if t.order_no == order.order_no
    )
    return trade.trade_no, trade.amount


async def test_a_paid_trade_gives_back_up_to_its_amount_once_per_refund_number(server, login):
    trade_no, amount = await paid_trade(login)
    gateway = server.backend.gateway
    part = gateway.refund(trade_no, "R1", amount - 100)
    assert (part.state, part.reason, part.amount) == ("SUCCESS", "", amount - 100)
    assert gateway.refund(trade_no, "R1", amount - 100) == part  # the same answer again
    assert gateway.refund(trade_no, "R1", 1) == part  # a number is one refund, whatever else
    beyond = gateway.refund(trade_no, "R2", 101)
    assert (beyond.state, beyond.reason) == ("REFUSED", "beyond_paid")
    assert gateway.refund(trade_no, "R2", 100) == beyond  # refused is kept too
    rest = gateway.refund(trade_no, "R3", 100)
    assert rest.state == "SUCCESS"
    assert gateway.query_refund("R3") == rest
    assert gateway.query_refund("R9") is None
    assert gateway.refund(trade_no, "R4", 0).reason == "beyond_paid"


async def test_a_refund_of_an_unpaid_or_unknown_trade_is_refused(server, login):
    api: ApiClient = await login(*CHEN)
    fees = await api.fees()
    fee = next(i for t in fees.tags for i in t.items if i.state == "unpaid")
    order = await api.create_order([fee.id], secrets.token_hex(8))
    await api.pay_order(order.order_no, "alipay")
    unpaid = server.backend.gateway.statement(TEN_AM.date()).trades
    assert unpaid == []  # nothing paid yet: the open trade is not in the statement
    with server.backend.store.read() as tx:  # the open trade's number, as the order holds it
        trade_no = tx.execute(
            "SELECT pay_trade_no FROM orders WHERE order_no=?", (order.order_no,)
        ).fetchone()[0]
    assert server.backend.gateway.refund(trade_no, "R1", 1).reason == "not_paid"
    assert server.backend.gateway.refund("T-none", "R2", 1).reason == "unknown_trade"
    assert server.backend.gateway.query_refund("R2") is None  # an unknown trade's: unkept


async def test_racing_refunds_never_give_back_more_than_was_paid(server, login):
    """Twenty refunds of a tenth each, from two workers at once, ten of them repeating a
    number: exactly the paid amount comes back, each number once."""
    trade_no, amount = await paid_trade(login)
    gateways = [w.backend.gateway for w in getattr(server, "workers", [server])]
    tenth = amount // 10
    asks = [(gateways[n % len(gateways)], f"R{n % 15}") for n in range(30)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda ask: ask[0].refund(trade_no, ask[1], tenth), asks))
    by_number = {a.refund_no: a for a in answers}
    assert all(a == by_number[a.refund_no] for a in answers)  # one answer per number
    assert sum(a.amount for a in by_number.values() if a.state == "SUCCESS") == 10 * tenth
    assert sorted(a.state for a in by_number.values()).count("REFUSED") == 5
