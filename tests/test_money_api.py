"""The money after payment over real HTTP (api-money.md): receipt resends, counter
payments and the cashier's day, refunds with four eyes, discrepancies, arrears, the
sandbox's duplicate payment — each on SQLite and on PostgreSQL with two workers, the
invariants read from the store after racing requests and approvals."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta

import httpx

from epay_tui.api import errors
from epay_tui.api.client import ApiClient, new_idempotency_key
from epay_tui.api.models import Order

from .api_helpers import error_of
from .conftest import CHEN, LI, STAFF, TEN_AM, ZHANG
from .invariants import assert_store_invariants, rows

ON_BOTH_DATABASES = True  # SQLite, and PostgreSQL with two workers (conftest)
FINANCE = ("finance01", "Finance2026")
NEW_PW = "Zhangwei2026x"
CURRENT = "2026-2027学年"
DUE = {"学费": 650000, "住宿费": 120000, "教材费": 42000, "保险费": 15000, "体检费": 6000}
API = "/api/v1"


async def item_ids(api: ApiClient, *names: str, tag: str = CURRENT) -> list[str]:
    fees = await api.fees()
    items = {i.name: i.id for t in fees.tags if t.tag == tag for i in t.items}
    return [items[name] for name in names]


async def staff_item_ids(staff: ApiClient, username: str, *names: str) -> list[str]:
    detail = await staff.staff_student(username)
    items = {i.name: i.id for t in detail.fees.tags if t.tag == CURRENT for i in t.items}
    return [items[name] for name in names]


async def paid_online(api: ApiClient, *names: str, channel: str = "wechat") -> Order:
    """The student pays ``names`` by scanning, as on a phone; the order once paid."""
    order = await api.create_order(await item_ids(api, *names), new_idempotency_key())
    qr = await api.pay_order(order.order_no, channel)
    await api.sandbox_pay(qr.qr_url, "success")
    paid = await api.get_order(order.order_no, wait=10, status="open")
    assert paid.status == "paid"
    return paid


def fee_state(fees, name: str) -> tuple[str, int, int]:
    item = next(i for t in fees.tags if t.tag == CURRENT for i in t.items if i.name == name)
    return item.state, item.amount_paid, item.amount_due


async def raw(server, api: ApiClient, method: str, path: str, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api.token}", **kwargs.pop("headers", {})}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        return await http.request(method, path, headers=headers, **kwargs)


# ---------------------------------------------------------------------------- receipts
async def test_a_receipt_is_resent_three_times_a_day_to_the_contacts_on_file_now(
    server, login, client, clock
):
    chen = await login(*CHEN)
    order = await paid_online(chen, "教材费")
    before = len((await client.outbox()).messages)
    await chen.update_me(CHEN[1], phone="13900000004")
    await chen.resend_receipt(order.order_no)
    sent = (await client.outbox()).messages[before:]
    assert sorted((m.channel, m.to) for m in sent) == [
        ("email", "chenjing@example.edu.cn"),
        ("sms", "13900000004"),  # the number fixed after payment
    ]
    assert all(order.receipt_no in m.body and order.order_no in m.body for m in sent)
    staff = await login(*STAFF)
    await staff.staff_resend_receipt(order.order_no)  # counted with the student's own
    await chen.resend_receipt(order.order_no)
    response = await raw(server, chen, "POST", f"{API}/orders/{order.order_no}/receipt/resend")
    details = error_of(response, 429, "RATE_LIMITED")
    assert 0 < details["retry_after"] <= 86400
    assert len((await client.outbox()).messages) == before + 6  # three resends, two each
    clock.advance(86400)
    chen, staff = await login(*CHEN), await login(*STAFF)  # the sessions ended meanwhile
    await chen.resend_receipt(order.order_no)  # a day after the first: one more
    audit = (await staff.staff_audit()).entries
    assert [e.actor for e in audit if e.action == "receipt.resend"][-1] == CHEN[0]


async def test_a_resend_needs_a_paid_own_order_and_valid_contacts(server, login):
    chen = await login(*CHEN)
    open_order = await chen.create_order(await item_ids(chen, "体检费"), new_idempotency_key())
    path = f"{API}/orders/{open_order.order_no}/receipt/resend"
    error_of(await raw(server, chen, "POST", path), 409, "ORDER_NOT_PAID")
    zhang = await login(*ZHANG, new_password=NEW_PW)
    error_of(await raw(server, zhang, "POST", path), 404, "ORDER_NOT_FOUND")
    staff = await login(*STAFF)
    paid = await staff.staff_counter_payment(
        LI[0], await staff_item_ids(staff, LI[0], "教材费"), "cash", None, new_idempotency_key()
    )
    path = f"{API}/staff/orders/{paid.order_no}/receipt/resend"
    details = error_of(await raw(server, staff, "POST", path), 409, "PROFILE_INCOMPLETE")
    assert details["problems"] == ["PHONE_INVALID", "EMAIL_MISSING"]


# ---------------------------------------------------------------------------- counter
async def test_a_cash_payment_at_the_counter_is_paid_at_once_with_its_cashier(
    server, login, client, clock
):
    clock.set(TEN_AM.replace(hour=23))  # payment hours do not apply at the counter
    staff = await login(*STAFF)
    zhang_items = await staff_item_ids(staff, ZHANG[0], "学费", "住宿费")
    key = new_idempotency_key()
    before = len((await client.outbox()).messages)
    order = await staff.staff_counter_payment(ZHANG[0], zhang_items, "cash", None, key)
    assert (order.status, order.channel, order.total) == ("paid", "cash", 770000)
    assert order.transaction_id.startswith("C") and order.receipt_no.startswith("R")
    again = await staff.staff_counter_payment(ZHANG[0], zhang_items, "cash", None, key)
    assert again.order_no == order.order_no  # the same key and body: the same order
    other_body = await raw(
        server,
        staff,
        "POST",
        f"{API}/staff/students/{ZHANG[0]}/counter-payments",
        json={"item_ids": zhang_items[:1], "method": "cash"},
        headers={"Idempotency-Key": key},
    )
    error_of(other_body, 422, "IDEMPOTENCY_KEY_REUSED")
    zhang = await login(*ZHANG, new_password=NEW_PW)
    assert [o.order_no for o in (await zhang.list_orders()).orders] == [order.order_no]
    assert fee_state(await zhang.fees(), "学费") == ("paid", 650000, 650000)
    receipt = await zhang.receipt(order.order_no)
    assert (receipt.channel, receipt.total, receipt.status) == ("cash", 770000, "issued")
    sent = (await client.outbox()).messages[before:]
    assert sorted(m.channel for m in sent) == ["email", "sms"]
    audit = (await staff.staff_audit()).entries
    entry = next(e for e in audit if e.action == "staff.counter_payment")
    assert (entry.actor, entry.target) == (STAFF[0], order.order_no)
    assert_store_invariants(server, settled=False)


async def test_a_pos_payment_needs_its_slip_number_once(server, login):
    staff = await login(*STAFF)
    path = f"{API}/staff/students/{ZHANG[0]}/counter-payments"
    items = await staff_item_ids(staff, ZHANG[0], "教材费")
    body = {"item_ids": items, "method": "pos"}
    no_slip = await raw(server, staff, "POST", path, json=body, headers={"Idempotency-Key": "a"})
    assert "reference" in str(error_of(no_slip, 422, "VALIDATION_ERROR"))
    order = await staff.staff_counter_payment(ZHANG[0], items, "pos", "000123", "b")
    assert (order.channel, order.transaction_id) == ("pos", "000123")
    chen_items = await staff_item_ids(staff, CHEN[0], "教材费")
    twice = await raw(
        server,
        staff,
        "POST",
        f"{API}/staff/students/{CHEN[0]}/counter-payments",
        json={"item_ids": chen_items, "method": "pos", "reference": "000123"},
        headers={"Idempotency-Key": "c"},
    )
    assert order.order_no in str(error_of(twice, 422, "VALIDATION_ERROR"))


async def test_a_counter_payment_is_checked_like_an_order(server, login):
    staff = await login(*STAFF)
    zhang = await login(*ZHANG, new_password=NEW_PW)
    online = await zhang.create_order(await item_ids(zhang, "体检费"), new_idempotency_key())
    path = f"{API}/staff/students/{{}}/counter-payments"

    async def counter(username: str, items: list[str]) -> httpx.Response:
        body = {"item_ids": items, "method": "cash"}
        headers = {"Idempotency-Key": new_idempotency_key()}
        return await raw(server, staff, "POST", path.format(username), json=body, headers=headers)

    mixed = await staff_item_ids(staff, ZHANG[0], "学费", "教材费")
    error_of(await counter(ZHANG[0], mixed), 422, "MIXED_RECEIPT_TYPES")
    held = await counter(ZHANG[0], await staff_item_ids(staff, ZHANG[0], "体检费"))
    assert error_of(held, 409, "ITEM_IN_OPEN_ORDER")["order_no"] == online.order_no
    paid = await staff_item_ids(staff, CHEN[0], "学费")
    error_of(await counter(CHEN[0], paid), 409, "ITEM_ALREADY_PAID")
    error_of(await counter(ZHANG[0], ["no-such-item"]), 404, "ITEM_NOT_FOUND")
    error_of(await counter("2099999999", mixed[:1]), 404, "STUDENT_NOT_FOUND")
    error_of(await counter(STAFF[0], mixed[:1]), 404, "STUDENT_NOT_FOUND")
    student = await raw(server, zhang, "POST", path.format(ZHANG[0]), json={}, headers={})
    error_of(student, 403, "FORBIDDEN")


async def test_counter_payments_reach_whichever_contacts_are_valid(server, login, client):
    staff = await login(*STAFF)
    before = len((await client.outbox()).messages)
    items = await staff_item_ids(staff, LI[0], "教材费")  # 李娜: bad phone, no e-mail
    order = await staff.staff_counter_payment(LI[0], items, "cash", "收据本 12", "k")
    assert order.status == "paid"
    assert (await client.outbox()).messages[before:] == []


async def test_the_cashier_report_is_the_days_counter_payments_oldest_first(server, login, clock):
    helpdesk, finance = await login(*STAFF), await login(*FINANCE)
    zhang_items = await staff_item_ids(helpdesk, ZHANG[0], "教材费", "保险费", "体检费")
    first = await helpdesk.staff_counter_payment(ZHANG[0], zhang_items[:1], "cash", None, "1")
    clock.advance(60)
    second = await helpdesk.staff_counter_payment(ZHANG[0], zhang_items[1:2], "pos", "P-9", "2")
    clock.advance(60)
    by_finance = await finance.staff_counter_payment(ZHANG[0], zhang_items[2:], "cash", None, "3")
    mine = await helpdesk.staff_cashier_report()
    assert (mine.date, mine.cashier) == (TEN_AM.date(), STAFF[0])
    assert [p.order_no for p in mine.payments] == [first.order_no, second.order_no]
    assert [(p.method, p.reference, p.name) for p in mine.payments] == [
        ("cash", None, "张伟"),
        ("pos", "P-9", "张伟"),
    ]
    assert (mine.totals.cash, mine.totals.pos, mine.totals.count) == (42000, 15000, 2)
    everyone = await helpdesk.staff_cashier_report(cashier="*")
    assert [p.order_no for p in everyone.payments][-1] == by_finance.order_no
    assert everyone.totals.cash == 48000
    theirs = await helpdesk.staff_cashier_report(cashier=FINANCE[0])
    assert [p.order_no for p in theirs.payments] == [by_finance.order_no]
    yesterday = await helpdesk.staff_cashier_report(TEN_AM.date() - timedelta(days=1))
    assert (yesterday.payments, yesterday.totals.count) == ([], 0)


# ---------------------------------------------------------------------------- refunds
async def test_an_items_refund_takes_two_staff_members_and_lowers_what_is_due(server, login):
    chen = await login(*CHEN)
    order = await paid_online(chen, "教材费", "保险费")
    helpdesk, finance = await login(*STAFF), await login(*FINANCE)
    [books] = await item_ids(chen, "教材费")
    refund = await helpdesk.staff_request_refund(
        order.order_no, "退教材", new_idempotency_key(), item_ids=[books]
    )
    assert (refund.kind, refund.status, refund.amount) == ("items", "pending", 42000)
    assert (refund.channel, refund.requested_by, refund.decided_by) == ("wechat", STAFF[0], None)
    with server.backend.store.read() as tx:  # nothing at the gateway before the approval
        assert tx.execute("SELECT refund_no FROM gw_refunds").fetchall() == []
    own = await raw(server, helpdesk, "POST", f"{API}/staff/refunds/{refund.refund_no}/approve")
    error_of(own, 403, "SAME_STAFF")
    approved = await finance.staff_approve_refund(refund.refund_no)
    assert (approved.status, approved.decided_by) == ("succeeded", FINANCE[0])
    assert approved.settled_at is not None
    again = await raw(server, finance, "POST", f"{API}/staff/refunds/{refund.refund_no}/approve")
    assert error_of(again, 409, "REFUND_NOT_PENDING")["status"] == "succeeded"
    assert fee_state(await chen.fees(), "教材费") == ("refunded", 0, 0)
    assert fee_state(await chen.fees(), "保险费") == ("paid", 15000, 15000)
    seen = await chen.get_order(order.order_no)
    assert seen.refunded == 42000
    assert [(r.refund_no, r.kind, r.status, r.item_ids) for r in seen.refunds] == [
        (refund.refund_no, "items", "succeeded", [books])
    ]
    receipt = await chen.receipt(order.order_no)
    assert (receipt.refunded, receipt.status) == (42000, "partially_refunded")
    assert {i.name: i.refunded for i in receipt.items} == {"教材费": 42000, "保险费": 0}
    twice = await raw(
        server,
        helpdesk,
        "POST",
        f"{API}/staff/refunds",
        json={"order_no": order.order_no, "item_ids": [books], "reason": "again"},
        headers={"Idempotency-Key": "again"},
    )
    assert error_of(twice, 409, "ITEM_NOT_REFUNDABLE")["item_ids"] == [books]
    [rest] = await item_ids(chen, "保险费")
    last = await finance.staff_request_refund(order.order_no, "退保险", "k2", item_ids=[rest])
    await helpdesk.staff_approve_refund(last.refund_no)
    receipt = await chen.receipt(order.order_no)
    assert (receipt.refunded, receipt.status) == (57000, "refunded")
    with server.backend.store.read() as tx:
        sent = tx.execute("SELECT refund_no, amount FROM gw_refunds ORDER BY amount").fetchall()
    assert [(r[0], r[1]) for r in sent] == [(last.refund_no, 15000), (refund.refund_no, 42000)]
    actions = [e.action for e in (await helpdesk.staff_audit()).entries]
    assert {"refund.requested", "refund.approved", "refund.succeeded"} <= set(actions)
    assert_store_invariants(server, settled=True)


async def test_a_rejected_or_withdrawn_request_frees_its_items(server, login, clock):
    chen = await login(*CHEN)
    order = await paid_online(chen, "教材费")
    helpdesk, finance = await login(*STAFF), await login(*FINANCE)
    [books] = await item_ids(chen, "教材费")
    first = await helpdesk.staff_request_refund(order.order_no, "退", "k1", item_ids=[books])
    withdrawn = await helpdesk.staff_reject_refund(first.refund_no, "填错了")
    assert (withdrawn.status, withdrawn.decided_by) == ("rejected", STAFF[0])
    clock.advance(1)
    second = await helpdesk.staff_request_refund(order.order_no, "退", "k2", item_ids=[books])
    rejected = await finance.staff_reject_refund(second.refund_no, "不符合退费条件")
    assert rejected.status == "rejected"
    late = await raw(server, finance, "POST", f"{API}/staff/refunds/{second.refund_no}/approve")
    assert error_of(late, 409, "REFUND_NOT_PENDING")["status"] == "rejected"
    assert fee_state(await chen.fees(), "教材费") == ("paid", 42000, 42000)
    assert [r.status for r in (await chen.get_order(order.order_no)).refunds] == [
        "rejected",
        "rejected",
    ]
    pending = await finance.staff_refunds("pending")
    assert pending.refunds == []
    every = await finance.staff_refunds()
    assert [r.refund_no for r in every.refunds] == [second.refund_no, first.refund_no]
    assert_store_invariants(server, settled=True)


async def test_a_duplicate_payment_is_a_discrepancy_refunded_as_a_trade(server, login, client):
    chen = await login(*CHEN)
    order = await paid_online(chen, "教材费")
    duplicate = await client.sandbox_duplicate_payment(order.order_no)
    assert duplicate.amount == 42000
    helpdesk, finance = await login(*STAFF), await login(*FINANCE)
    found = (await helpdesk.staff_discrepancies(open_only=True)).discrepancies
    assert [(d.order_no, d.trade_no, d.amount, d.refund_no) for d in found] == [
        (order.order_no, duplicate.trade_no, 42000, None)
    ]
    assert (await chen.get_order(order.order_no)).transaction_id == order.transaction_id
    assert_store_invariants(server, settled=True)  # kept, not paid twice
    refund = await helpdesk.staff_request_refund(
        order.order_no, "重复缴费", "k1", trade_no=duplicate.trade_no
    )
    assert (refund.kind, refund.amount, refund.trade_no, refund.item_ids) == (
        "trade",
        42000,
        duplicate.trade_no,
        [],
    )
    listed = (await helpdesk.staff_discrepancies()).discrepancies
    assert listed[0].refund_no == refund.refund_no
    done = await finance.staff_approve_refund(refund.refund_no)
    assert done.status == "succeeded"
    assert (await helpdesk.staff_discrepancies(open_only=True)).discrepancies == []
    seen = await chen.get_order(order.order_no)
    assert seen.refunded == 0  # money the order never held
    assert [(r.kind, r.status) for r in seen.refunds] == [("trade", "succeeded")]
    assert fee_state(await chen.fees(), "教材费") == ("paid", 42000, 42000)

    async def refuse(trade_no: str, key: str) -> dict:
        body = {"order_no": order.order_no, "trade_no": trade_no, "reason": "x"}
        headers = {"Idempotency-Key": key}
        response = await raw(
            server, helpdesk, "POST", f"{API}/staff/refunds", json=body, headers=headers
        )
        return error_of(response, 409, "TRADE_NOT_REFUNDABLE")

    await refuse(duplicate.trade_no, "k2")  # already refunded
    own = (await helpdesk.staff_refunds()).refunds  # the order's own payment's trade:
    [statement] = [
        t
        for t in (await client.sandbox_statement(TEN_AM.date())).trades
        if t.transaction_id == order.transaction_id
    ]
    await refuse(statement.trade_no, "k3")
    await refuse("T-none", "k4")
    assert len(own) == 1
    assert_store_invariants(server, settled=True)


async def test_a_counter_payments_refund_is_paid_out_at_the_counter(server, login):
    helpdesk, finance = await login(*STAFF), await login(*FINANCE)
    items = await staff_item_ids(helpdesk, ZHANG[0], "住宿费")
    order = await helpdesk.staff_counter_payment(ZHANG[0], items, "cash", None, "k")
    refund = await helpdesk.staff_request_refund(order.order_no, "退宿", "r", item_ids=items)
    assert refund.channel == "cash"
    done = await finance.staff_approve_refund(refund.refund_no)
    assert (done.status, done.settled_at is not None) == ("succeeded", True)
    with server.backend.store.read() as tx:
        assert tx.execute("SELECT COUNT(*) FROM gw_refunds").fetchone()[0] == 0
    detail = await helpdesk.staff_student(ZHANG[0])
    assert fee_state(detail.fees, "住宿费") == ("refunded", 0, 0)
    assert_store_invariants(server, settled=True)


async def test_refund_requests_are_validated(server, login):
    chen = await login(*CHEN)
    helpdesk = await login(*STAFF)
    paid = await paid_online(chen, "教材费")
    unpaid = await chen.create_order(await item_ids(chen, "体检费"), new_idempotency_key())
    [books] = await item_ids(chen, "教材费")

    async def ask(body: dict) -> httpx.Response:
        headers = {"Idempotency-Key": new_idempotency_key()}
        return await raw(
            server, helpdesk, "POST", f"{API}/staff/refunds", json=body, headers=headers
        )

    both = {"order_no": paid.order_no, "item_ids": [books], "trade_no": "T1", "reason": "x"}
    error_of(await ask(both), 422, "VALIDATION_ERROR")
    error_of(await ask({"order_no": paid.order_no, "reason": "x"}), 422, "VALIDATION_ERROR")
    empty = {"order_no": paid.order_no, "item_ids": [books], "reason": ""}
    error_of(await ask(empty), 422, "VALIDATION_ERROR")
    long = {"order_no": paid.order_no, "item_ids": [books], "reason": "长" * 201}
    error_of(await ask(long), 422, "VALIDATION_ERROR")
    other = {"order_no": paid.order_no, "item_ids": ["not-in-it"], "reason": "x"}
    assert error_of(await ask(other), 409, "ITEM_NOT_REFUNDABLE")["item_ids"] == ["not-in-it"]
    open_order = {
        "order_no": unpaid.order_no,
        "item_ids": unpaid.items[0].id and [unpaid.items[0].id],
        "reason": "x",
    }
    error_of(await ask(open_order), 409, "ORDER_NOT_PAID")
    nowhere = {"order_no": "20260101" + "0" * 10, "item_ids": [books], "reason": "x"}
    error_of(await ask(nowhere), 404, "ORDER_NOT_FOUND")
    error_of(
        await raw(server, helpdesk, "GET", f"{API}/staff/refunds/RF0"), 404, "REFUND_NOT_FOUND"
    )
    students = await raw(server, chen, "GET", f"{API}/staff/refunds")
    error_of(students, 403, "FORBIDDEN")


async def test_a_refund_the_gateway_did_not_answer_stays_processing_until_queried(
    server, login, monkeypatch
):
    chen = await login(*CHEN)
    order = await paid_online(chen, "教材费")
    helpdesk, finance = await login(*STAFF), await login(*FINANCE)
    [books] = await item_ids(chen, "教材费")
    refund = await helpdesk.staff_request_refund(order.order_no, "退", "k", item_ids=[books])
    gateways = [w.backend.gateway for w in getattr(server, "workers", [server])]
    for gateway in gateways:  # the gateway's answer lost on the way, once
        monkeypatch.setattr(gateway, "refund", _unreachable(gateway.refund))
    processing = await finance.staff_approve_refund(refund.refund_no)
    assert processing.status == "processing"
    assert fee_state(await chen.fees(), "教材费") == ("paid", 42000, 42000)
    assert (await chen.get_order(order.order_no)).refunded == 0
    done = await finance.staff_query_refund(refund.refund_no)
    assert done.status == "succeeded"
    with server.backend.store.read() as tx:  # sent twice under one number: refunded once
        assert tx.execute("SELECT COUNT(*) FROM gw_refunds").fetchone()[0] == 1
    assert fee_state(await chen.fees(), "教材费") == ("refunded", 0, 0)
    assert_store_invariants(server, settled=True)


def _unreachable(refund):
    """The gateway's refund, done, but its answer lost the first time."""
    calls = []

    def lossy(*args, **kwargs):
        answer = refund(*args, **kwargs)
        calls.append(answer)
        if len(calls) == 1:
            raise errors.BackendTimeout()
        return answer

    return lossy


async def test_racing_refund_requests_and_approvals_give_back_once(server, login):
    """Ten requests for one item from two staff members and two workers, then approvals
    racing from two sessions of each: one refund, given back once."""
    chen = await login(*CHEN)
    order = await paid_online(chen, "教材费", "保险费")
    staff = [await login(*STAFF), await login(*FINANCE), await login(*STAFF), await login(*FINANCE)]
    [books] = await item_ids(chen, "教材费")
    body = {"order_no": order.order_no, "item_ids": [books], "reason": "退"}

    async def ask(n: int) -> httpx.Response:
        headers = {"Idempotency-Key": f"key-{n % 3}"}  # some repeat a key: one refund each
        return await raw(
            server, staff[n % 4], "POST", f"{API}/staff/refunds", json=body, headers=headers
        )

    answers = await asyncio.gather(*(ask(n) for n in range(10)))
    made = {r.json()["refund_no"] for r in answers if r.status_code == 201}
    assert len(made) == 1, [r.text for r in answers]
    assert all(r.status_code in (201, 409) for r in answers), [r.text for r in answers]
    [refund_no] = made
    requester = (await staff[0].staff_refund(refund_no)).requested_by
    approvers = [
        s for s in staff if (STAFF[0] if s in (staff[0], staff[2]) else FINANCE[0]) != requester
    ]
    approvals = await asyncio.gather(
        *(raw(server, s, "POST", f"{API}/staff/refunds/{refund_no}/approve") for s in approvers * 3)
    )
    assert sorted(r.status_code for r in approvals) == [200] + [409] * 5
    assert fee_state(await chen.fees(), "教材费") == ("refunded", 0, 0)
    assert (await chen.get_order(order.order_no)).refunded == 42000
    assert rows(server, "SELECT refund_no FROM gw_refunds") == [{"refund_no": refund_no}]
    assert_store_invariants(server, settled=True)


# ---------------------------------------------------------------------------- arrears
async def test_arrears_list_who_owes_in_the_current_tag_most_first_and_export_to_excel(
    server, login
):
    staff = await login(*STAFF)
    chen = await login(*CHEN)
    await paid_online(chen, "体检费")
    found = await staff.staff_arrears()
    assert found.tag == CURRENT
    owed = {s.username: s.outstanding for s in found.students}
    assert owed[ZHANG[0]] == sum(DUE.values())
    assert owed[CHEN[0]] == DUE["教材费"] + DUE["保险费"]
    assert [s.outstanding for s in found.students] == sorted(owed.values(), reverse=True)
    assert (found.count, found.total_outstanding) == (len(owed), sum(owed.values()))
    nobody = await staff.staff_arrears(department="没有这个学院")
    assert (nobody.students, nobody.count, nobody.total_outstanding) == ([], 0, 0)
    response = await raw(server, staff, "GET", f"{API}/staff/arrears", params={"format": "csv"})
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel looks for
    table = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert table[0] == ["学号", "姓名", "院系", "班级", "未缴金额"]
    by_number = {r[0]: r for r in table[1:]}
    assert by_number[ZHANG[0]][1:] == ["张伟", "智能制造学院", "机电2401", "8330.00"]
    assert len(table) == 1 + found.count
    assert await staff.staff_arrears_csv() == response.content


async def test_money_routes_are_staff_only(server, login):
    chen = await login(*CHEN)
    for method, path in (
        ("GET", "/staff/cashier-report"),
        ("GET", "/staff/discrepancies"),
        ("GET", "/staff/arrears"),
        ("POST", "/staff/refunds/RF1/approve"),
    ):
        error_of(await raw(server, chen, method, API + path), 403, "FORBIDDEN")
