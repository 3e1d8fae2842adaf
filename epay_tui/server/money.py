"""The money after payment (api-money.md): receipt resends, counter payments and the
cashier's day, refunds with four eyes, discrepancies, arrears.

The invariants on top of api.md's: an item and a trade are each given back at most once
(a refund claims them, :mod:`epay_tui.server.store.money`); a refund reaches the gateway
only once a second staff member approved it, under its refund number (the gateway's
idempotency key: a retry never refunds twice); a succeeded ``items`` refund lowers the
items' paid and due amounts and the order's ``refunded`` in the transaction that
records it, with its audit entry. Decisions on an order's refunds are taken holding the
order's row.
"""

from __future__ import annotations

import csv
import io
import json
import math
import secrets
from datetime import date, datetime

from epay_tui.api import errors, models, rules
from epay_tui.server import payments
from epay_tui.server.accounts import Session, profile_of
from epay_tui.server.backend import Backend
from epay_tui.server.store import money, orders
from epay_tui.server.store.engine import Record, Tx

RESENDS_PER_DAY = 3
"""Receipt resends of one order within 24 hours; the next is refused."""
ARREARS_CSV_HEADER = ("学号", "姓名", "院系", "班级", "未缴金额")


# ---------------------------------------------------------------------------- receipts
def resend_receipt(backend: Backend, order_no: str, actor: str, username: str | None) -> None:
    """The e-receipt notice again, to the contacts on file now (``username``: only that
    student's order; None: staff)."""
    now = backend.time.ts()
    with backend.store.write() as tx:
        row = payments.order_row(tx, order_no, username, lock=True)  # resends in turn
        if row["status"] != "paid":
            raise errors.OrderNotPaid()
        problems = profile_of(tx, row["username"]).profile_problems
        if problems:
            raise errors.ProfileIncomplete(problems=problems)
        sent = money.resends_since(tx, order_no, now - 86400)
        if len(sent) >= RESENDS_PER_DAY:
            raise errors.RateLimited(retry_after=max(1, math.ceil(sent[0] + 86400 - now)))
        items = orders.order_items_of(tx, order_no)
        payments.send_receipt(backend, tx, row, items, row["receipt_no"], row["transaction_id"])
        money.add_resend(tx, order_no, now)
        backend.audit(actor, "receipt.resend", order_no)


# ---------------------------------------------------------------------------- staff keys
def _replayed(tx: Tx, staff: str, key: str, body: str) -> str | None:
    """What the staff member's key made before (the same body), or None for a new key."""
    row = money.staff_request(tx, staff, key)
    if row is None:
        return None
    if row["body"] != body:
        raise errors.IdempotencyKeyReused()
    return row["result"]


def _staff_key_taken(backend: Backend, staff: str, key: str, body: str) -> str | None:
    with backend.store.read() as tx:
        return _replayed(tx, staff, key, body)


# ---------------------------------------------------------------------------- counter
def counter_payment(
    backend: Backend, staff: Session, username: str, key: str, body: models.CounterPayment
) -> models.Order:
    """Cash or a card at the counter: checked like ``POST /orders`` (but not payment
    hours or contacts), paid at once, its cashier recorded."""
    if body.method == "pos" and body.reference is None:
        raise errors.ValidationFailed(fields={"reference": "the POS slip number is required"})
    request = json.dumps(
        [username, sorted(set(body.item_ids)), body.method, body.reference], ensure_ascii=False
    )
    done = _staff_key_taken(backend, staff.username, key, request)
    if done is not None:
        return payments.get_order(backend, done, None)
    with backend.store.read() as tx:
        if profile_of(tx, username).role != "student":
            raise errors.StudentNotFound()
    payments.sweep_user(backend, username)  # release expired orders before judging locks
    now = backend.time.ts()
    with backend.store.write() as tx:
        orders.lock_student(tx, staff.username)  # the staff member's keys, one at a time
        orders.lock_student(tx, username)
        order_no = _replayed(tx, staff.username, key, request)
        if order_no is None:
            order_no = _record_counter_payment(backend, tx, staff, username, body, now)
            money.remember_staff_request(tx, staff.username, key, request, order_no)
        order = payments.order_model(backend, tx, payments.order_row(tx, order_no, None))
    backend.events.publish(order_no)
    return order


def _record_counter_payment(
    backend: Backend,
    tx: Tx,
    staff: Session,
    username: str,
    body: models.CounterPayment,
    now: float,
) -> str:
    receipt_type, lines = payments.checked_items(tx, username, body.item_ids)
    if body.method == "pos":
        transaction_id = body.reference
        taken = money.order_of_transaction(tx, transaction_id)
        if taken is not None:  # one card payment is one slip: never recorded twice
            raise errors.ValidationFailed(
                fields={"reference": f"this slip number is recorded on order {taken}"}
            )
    else:
        transaction_id = f"C{backend.time.at(now):%Y%m%d}{secrets.randbelow(10**10):010d}"
    order_no = payments.add_order(backend, tx, username, receipt_type, lines, now)
    row = payments.order_row(tx, order_no, None, lock=True)
    payments.mark_paid(backend, tx, row, now, body.method, transaction_id)
    money.set_counter(tx, order_no, staff.username, body.reference)
    backend.audit(
        staff.username,
        "staff.counter_payment",
        order_no,
        {"student": username, "method": body.method, "total": row["total"]},
    )
    return order_no


def cashier_report(
    backend: Backend, staff: Session, day: date | None, cashier: str | None
) -> models.CashierReport:
    """A day's counter payments (default: today, the caller; ``*``: every cashier)."""
    day = day or backend.time.now().date()
    who = cashier or staff.username
    start = datetime(day.year, day.month, day.day, tzinfo=backend.time.zone).timestamp()
    with backend.store.read() as tx:
        rows = money.counter_payments(tx, start, start + 86400, None if who == "*" else who)
    taken = [
        models.CashierPayment(
            order_no=r["order_no"],
            username=r["username"],
            name=r["name"],
            method=r["channel"],
            reference=r["reference"],
            total=r["total"],
            paid_at=backend.time.at(r["paid_at"]),
        )
        for r in rows
    ]
    totals = models.CashierTotals(
        cash=sum(p.total for p in taken if p.method == "cash"),
        pos=sum(p.total for p in taken if p.method == "pos"),
        count=len(taken),
    )
    return models.CashierReport(date=day, cashier=who, payments=taken, totals=totals)


# ---------------------------------------------------------------------------- refunds
def _refund_model(backend: Backend, tx: Tx, row: Record) -> models.Refund:
    at = backend.time.at
    return models.Refund(
        refund_no=row["refund_no"],
        kind=row["kind"],
        order_no=row["order_no"],
        item_ids=[r["item_id"] for r in money.refund_items_of(tx, row["refund_no"])],
        trade_no=row["trade_no"],
        amount=row["amount"],
        channel=row["channel"],
        reason=row["reason"],
        status=row["status"],
        requested_by=row["requested_by"],
        requested_at=at(row["requested_at"]),
        decided_by=row["decided_by"],
        decided_at=at(row["decided_at"]) if row["decided_at"] else None,
        settled_at=at(row["settled_at"]) if row["settled_at"] else None,
    )


def _refund_row(tx: Tx, refund_no: str, *, lock: bool = False) -> Record:
    row = money.refund_row(tx, refund_no, lock=lock)
    if row is None:
        raise errors.RefundNotFound()
    return row


def get_refund(backend: Backend, refund_no: str) -> models.Refund:
    with backend.store.read() as tx:
        return _refund_model(backend, tx, _refund_row(tx, refund_no))


def list_refunds(backend: Backend, status: str | None) -> models.Refunds:
    with backend.store.read() as tx:
        rows = money.refund_rows(tx, status)
        return models.Refunds(refunds=[_refund_model(backend, tx, r) for r in rows])


def request_refund(
    backend: Backend, staff: Session, key: str, body: models.RefundRequest
) -> models.Refund:
    """A pending refund of paid items of a paid order, or of a trade that paid nothing;
    nothing moves until another staff member approves it."""
    if (body.item_ids is None) == (body.trade_no is None):
        raise errors.ValidationFailed(fields={"item_ids": "give exactly one of item_ids, trade_no"})
    request = json.dumps(
        [body.order_no, sorted(set(body.item_ids or [])), body.trade_no, body.reason],
        ensure_ascii=False,
    )
    done = _staff_key_taken(backend, staff.username, key, request)
    if done is not None:
        return get_refund(backend, done)
    with backend.store.read() as tx:
        payments.order_row(tx, body.order_no, None)
    trade = None
    if body.trade_no is not None:
        trade = _trade_to_give_back(backend, body.order_no, body.trade_no)
    with backend.store.write() as tx:
        orders.lock_student(tx, staff.username)  # the staff member's keys, one at a time
        order = payments.order_row(tx, body.order_no, None, lock=True)
        refund_no = _replayed(tx, staff.username, key, request)
        if refund_no is None:
            refund_no = _new_refund(backend, tx, staff, order, body, trade)
            money.remember_staff_request(tx, staff.username, key, request, refund_no)
        refund = _refund_model(backend, tx, _refund_row(tx, refund_no))
    return refund


def _trade_to_give_back(backend: Backend, order_no: str, trade_no: str):
    """The gateway's view of a trade of ``order_no`` that took money the order did not
    keep; it is applied first (a payment not yet recorded is the order's, not a refund),
    so it is then the order's payment or one of its discrepancies."""
    try:
        view = backend.gateway.query(trade_no)
    except errors.TradeNotFound:
        raise errors.TradeNotRefundable(reason="unknown") from None
    if view.order_no != order_no:
        raise errors.TradeNotRefundable(reason="unknown")
    if view.state != "SUCCESS":
        raise errors.TradeNotRefundable(reason="took_no_money")
    with backend.order_locks.hold(order_no):
        payments.record_payment(
            backend,
            order_no,
            trade_no,
            view.transaction_id,
            view.paid_at,
            view.amount,
            "refund_request",
        )
    return view


def _new_refund(
    backend: Backend,
    tx: Tx,
    staff: Session,
    order: Record,
    body: models.RefundRequest,
    trade,
) -> str:
    """Judge the request holding the order's row; then the refund and its claims."""
    order_no = order["order_no"]
    if trade is not None:
        if trade.transaction_id == order["transaction_id"]:
            raise errors.TradeNotRefundable(reason="the_orders_payment")
        kept = money.trade_discrepancy(tx, trade.trade_no)
        claim = f"trade:{trade.trade_no}"
        if kept is None or money.claimed(tx, [claim]):
            raise errors.TradeNotRefundable(reason="already_refunded")
        items: list[tuple[str, int]] = []
        kind, amount, channel, claims = "trade", trade.amount, trade.channel, [claim]
    else:
        if order["status"] != "paid":
            raise errors.OrderNotPaid()
        held = {r["item_id"]: r["amount"] for r in orders.order_items_of(tx, order_no)}
        wanted = list(dict.fromkeys(body.item_ids or []))
        claims = [f"item:{item_id}" for item_id in wanted]
        taken = money.claimed(tx, claims)
        refused = [i for i in wanted if i not in held or f"item:{i}" in taken]
        if refused:
            raise errors.ItemNotRefundable(item_ids=refused)
        items = [(item_id, held[item_id]) for item_id in wanted]
        kind, amount, channel = "items", sum(a for _, a in items), order["channel"]
    refund_no = f"RF{backend.time.now():%Y%m%d}{secrets.randbelow(10**10):010d}"
    while money.refund_row(tx, refund_no) is not None:
        refund_no = f"RF{backend.time.now():%Y%m%d}{secrets.randbelow(10**10):010d}"
    money.add_refund(
        tx,
        refund_no=refund_no,
        kind=kind,
        order_no=order_no,
        trade_no=None if trade is None else trade.trade_no,
        items=items,
        amount=amount,
        channel=channel,
        reason=body.reason,
        requested_by=staff.username,
        requested_at=backend.time.ts(),
        claims=claims,
    )
    backend.audit(
        staff.username,
        "refund.requested",
        refund_no,
        {"order": order_no, "kind": kind, "amount": amount, "reason": body.reason},
    )
    return refund_no


def approve_refund(backend: Backend, staff: Session, refund_no: str) -> models.Refund:
    """The second pair of eyes: a gateway refund is sent (``processing`` until the
    gateway settles it); cash and card are paid out at the counter (``succeeded``)."""
    with backend.store.read() as tx:
        order_no = _refund_row(tx, refund_no)["order_no"]
    with backend.store.write() as tx:
        payments.order_row(tx, order_no, None, lock=True)
        row = _refund_row(tx, refund_no, lock=True)
        if row["status"] != "pending":
            raise errors.RefundNotPending(status=row["status"])
        if row["requested_by"] == staff.username:
            raise errors.SameStaff()
        money.decide(tx, refund_no, "processing", staff.username, backend.time.ts())
        backend.audit(staff.username, "refund.approved", refund_no, {"order": order_no})
        if row["channel"] in ("cash", "pos"):  # paid out at the counter, now
            _settle(backend, tx, row, succeeded=True)
    if row["channel"] not in ("cash", "pos"):
        _ask_gateway(backend, refund_no, send=True)
    return get_refund(backend, refund_no)


def reject_refund(backend: Backend, staff: Session, refund_no: str, reason: str) -> models.Refund:
    """A pending refund is turned down (or withdrawn by its requester); its items and
    trade are free for another request."""
    with backend.store.read() as tx:
        order_no = _refund_row(tx, refund_no)["order_no"]
    with backend.store.write() as tx:
        payments.order_row(tx, order_no, None, lock=True)
        row = _refund_row(tx, refund_no, lock=True)
        if not money.decide(tx, refund_no, "rejected", staff.username, backend.time.ts()):
            raise errors.RefundNotPending(status=row["status"])
        money.release_claims(tx, refund_no)
        backend.audit(staff.username, "refund.rejected", refund_no, {"reason": reason})
    return get_refund(backend, refund_no)


def query_refund(backend: Backend, staff: Session, refund_no: str) -> models.Refund:
    """Ask the gateway about a ``processing`` refund again (sent again under its number
    if the gateway never got it: it refunds once whatever the retries)."""
    with backend.store.read() as tx:
        row = _refund_row(tx, refund_no)
    if row["status"] == "processing" and row["channel"] not in ("cash", "pos"):
        _ask_gateway(backend, refund_no, send=False)
    backend.audit(staff.username, "refund.query", refund_no)
    return get_refund(backend, refund_no)


def _paying_trade(backend: Backend, order_no: str) -> str | None:
    """The gateway trade whose money paid the order."""
    with backend.store.read() as tx:
        order = payments.order_row(tx, order_no, None)
        trade_nos = orders.order_trade_nos(tx, order_no)
    for trade_no in trade_nos:
        if backend.gateway.query(trade_no).transaction_id == order["transaction_id"]:
            return trade_no
    return None


def _ask_gateway(backend: Backend, refund_no: str, *, send: bool) -> None:
    """Send (or look up) an approved refund at the gateway and settle what it answers;
    an unreachable gateway leaves it ``processing`` for a later query."""
    with backend.store.read() as tx:
        row = _refund_row(tx, refund_no)
    try:
        trade_no = row["trade_no"] or _paying_trade(backend, row["order_no"])
        view = None if send else backend.gateway.query_refund(refund_no)
        if view is None and trade_no is not None:
            view = backend.gateway.refund(trade_no, refund_no, row["amount"])
    except errors.ApiError:
        return
    if view is None or view.state not in ("SUCCESS", "REFUSED"):
        return
    with backend.store.write() as tx:
        payments.order_row(tx, row["order_no"], None, lock=True)
        current = _refund_row(tx, refund_no, lock=True)
        if current["status"] == "processing":
            _settle(backend, tx, current, succeeded=view.state == "SUCCESS", why=view.reason)


def _settle(backend: Backend, tx: Tx, row: Record, *, succeeded: bool, why: str = "") -> None:
    """The money went back (its effects, in this transaction) or did not (the claims
    let go); the caller holds the order's and the refund's rows."""
    refund_no, order_no = row["refund_no"], row["order_no"]
    money.settle(tx, refund_no, "succeeded" if succeeded else "failed", backend.time.ts())
    if not succeeded:
        money.release_claims(tx, refund_no)
        backend.audit("gateway", "refund.failed", refund_no, {"reason": why})
        return
    if row["kind"] == "items":
        for item in money.refund_items_of(tx, refund_no):
            if not money.give_back_item(tx, item["item_id"], item["amount"]):
                raise errors.InternalError("a fee item would be refunded beyond what it holds")
        if not money.add_order_refunded(tx, order_no, row["amount"]):
            raise errors.InternalError("an order would be refunded beyond its total")
    backend.audit("system", "refund.succeeded", refund_no, {"amount": row["amount"]})
    backend.events.publish(order_no)


# ---------------------------------------------------------------------------- discrepancies
def discrepancies(backend: Backend, open_only: bool) -> models.Discrepancies:
    with backend.store.read() as tx:
        rows = money.discrepancy_rows(tx, open_only)
    return models.Discrepancies(
        discrepancies=[
            models.DiscrepancyEntry(
                id=r["id"],
                at=backend.time.at(r["at"]),
                order_no=r["order_no"],
                kind=r["kind"],
                detail=r["detail"],
                trade_no=r["trade_no"],
                amount=r["amount"],
                refund_no=r["refund_no"],
            )
            for r in rows
        ]
    )


# ---------------------------------------------------------------------------- arrears
def arrears(
    backend: Backend, tag: str | None, department: str | None, class_name: str | None
) -> models.Arrears:
    with backend.store.read() as tx:
        tag = tag or money.current_tag(tx) or ""
        rows = money.arrears(tx, tag, department, class_name)
    students = [
        models.ArrearsStudent(
            username=r["username"],
            name=r["name"],
            department=r["department"],
            class_name=r["class_name"],
            outstanding=r["outstanding"],
        )
        for r in rows
    ]
    return models.Arrears(
        tag=tag,
        students=students,
        total_outstanding=sum(s.outstanding for s in students),
        count=len(students),
    )


def arrears_csv(found: models.Arrears) -> bytes:
    """The arrears as Excel opens them: UTF-8 with a BOM, amounts as ``6500.00``; a cell
    that a spreadsheet would run as a formula is kept as text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(ARREARS_CSV_HEADER)
    for s in found.students:
        cells = (s.username, s.name, s.department, s.class_name)
        writer.writerow([*map(_cell, cells), rules.plain_yuan(s.outstanding)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
