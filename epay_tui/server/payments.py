"""Fees and orders: item locks, idempotent creation, pay, query, cancel, claim, expiry.

The three invariants live here: an item is paid at most once (its item lock is taken
holding the student's row, ``paid_order_no`` holding the order's); every successful
gateway payment ends recorded on its order (:func:`record_payment` from notify, query,
claim, expiry and reconciliation); a gateway trade is closed before its items are
released (:func:`_close_trade_then_release`). Steps on one order are serialised
with a per-order lock so a notify and a cancel cannot interleave. The SQL is the
store's (:mod:`epay_tui.server.store.orders`).
"""

from __future__ import annotations

import json
import secrets

from epay_tui.api import errors, models, rules
from epay_tui.server.accounts import Session, profile_of
from epay_tui.server.backend import Backend
from epay_tui.server.store import money, orders
from epay_tui.server.store.engine import Record, Tx


# ---------------------------------------------------------------------------- fees
def fees_of(tx: Tx, username: str) -> models.Fees:
    tags: dict[str, list[models.FeeItem]] = {}
    for r in orders.fee_items_of(tx, username):
        outstanding = r["amount_due"] - r["amount_paid"]
        if r["lock_order"]:
            state, order_no = "in_order", r["lock_order"]
        elif r["refunded"] and r["amount_due"] <= 0:
            state, order_no = "refunded", r["paid_order_no"]
        elif outstanding <= 0:
            state, order_no = "paid", r["paid_order_no"]
        else:
            state, order_no = "unpaid", None
        tags.setdefault(r["tag"], []).append(
            models.FeeItem(
                id=r["id"],
                name=r["name"],
                kind=r["kind"],
                receipt_type=rules.receipt_type_for(r["kind"]),
                amount_due=r["amount_due"],
                amount_paid=r["amount_paid"],
                outstanding=outstanding,
                state=state,
                order_no=order_no,
            )
        )
    return models.Fees(tags=[models.FeeTag(tag=t, items=items) for t, items in tags.items()])


def fees(backend: Backend, username: str) -> models.Fees:
    sweep_user(backend, username)
    with backend.store.read() as tx:
        return fees_of(tx, username)


# ---------------------------------------------------------------------------- reading orders
def order_model(backend: Backend, tx: Tx, row: Record) -> models.Order:
    at = backend.time.at
    items = orders.order_items_of(tx, row["order_no"])
    payment = None
    if row["pay_channel"] and row["status"] in ("open", "awaiting_confirmation"):
        payment = models.PaymentInfo(
            channel=row["pay_channel"],
            qr_url=row["qr_url"],
            issued_at=at(row["pay_issued_at"]),
            expires_at=at(row["pay_expires_at"]),
        )
    return models.Order(
        order_no=row["order_no"],
        status=row["status"],
        items=[
            models.OrderItem(id=i["item_id"], name=i["name"], amount=i["amount"]) for i in items
        ],
        total=row["total"],
        receipt_type=row["receipt_type"],
        payee=row["payee"],
        created_at=at(row["created_at"]),
        expires_at=at(row["expires_at"]),
        payment=payment,
        paid_at=at(row["paid_at"]) if row["paid_at"] else None,
        channel=row["channel"],
        transaction_id=row["transaction_id"],
        receipt_no=row["receipt_no"],
        close_reason=row["close_reason"],
        refunded=row["refunded"],
        refunds=refunds_of(tx, row["order_no"]),
    )


def refunds_of(tx: Tx, order_no: str) -> list[models.OrderRefund]:
    """Every refund tied to the order, of either kind, oldest first."""
    found = money.refunds_of_order(tx, order_no)
    if not found:
        return []
    items: dict[str, list[str]] = {}
    for r in money.refund_items_of_order(tx, order_no):
        items.setdefault(r["refund_no"], []).append(r["item_id"])
    return [
        models.OrderRefund(
            refund_no=r["refund_no"],
            kind=r["kind"],
            amount=r["amount"],
            status=r["status"],
            item_ids=items.get(r["refund_no"], []),
        )
        for r in found
    ]


def order_row(tx: Tx, order_no: str, username: str | None, *, lock: bool = False) -> Record:
    """The order row (``lock``: taken until the transaction ends, to change its status);
    another user's order answers exactly like an unknown one."""
    row = orders.order_row(tx, order_no, lock=lock)
    if row is None or (username is not None and row["username"] != username):
        raise errors.OrderNotFound()
    return row


def get_order(backend: Backend, order_no: str, username: str | None) -> models.Order:
    with backend.store.read() as tx:
        order_row(tx, order_no, username)
    expire_if_due(backend, order_no)
    with backend.store.read() as tx:
        return order_model(backend, tx, order_row(tx, order_no, username))


def list_orders(backend: Backend, username: str) -> models.Orders:
    sweep_user(backend, username)
    with backend.store.read() as tx:
        return models.Orders(orders=orders_of(backend, tx, username))


def orders_of(backend: Backend, tx: Tx, username: str) -> list[models.Order]:
    """The student's orders, newest first."""
    return [order_model(backend, tx, r) for r in orders.orders_of(tx, username)]


# ---------------------------------------------------------------------------- creating
def _body_key(item_ids: list[str]) -> str:
    return json.dumps(sorted(set(item_ids)))


def new_order_no(backend: Backend) -> str:
    return f"{backend.time.now():%Y%m%d}{secrets.randbelow(10**10):010d}"


def _check_hours(backend: Backend) -> None:
    if not backend.time.open_now():
        hours = backend.config.payment_hours
        raise errors.OutsidePaymentHours(opens=hours.opens, closes=hours.closes)


def create_order(backend: Backend, session: Session, key: str, item_ids: list[str]) -> models.Order:
    """Lock the items into a new order, or lead back to the order this key made."""
    username = session.username
    body = _body_key(item_ids)
    replay = _replay(backend, username, key, body)
    if replay:
        return replay
    sweep_user(backend, username)  # release expired orders before judging locks
    _check_hours(backend)
    now = backend.time.ts()
    with backend.store.write() as tx:
        orders.lock_student(tx, username)  # held while its key, items and seq are judged
        replay_no = _idempotent_order_no(tx, username, key, body)
        if replay_no is None:
            order_no = _insert_order(backend, tx, username, item_ids, now)
            orders.remember_key(tx, username, key, body, order_no)
            backend.audit(username, "order.created", order_no, {"items": sorted(set(item_ids))})
            created = order_model(backend, tx, order_row(tx, order_no, None))
    if replay_no is not None:
        return get_order(backend, replay_no, username)
    backend.events.publish(order_no)
    return created


def _idempotent_order_no(tx: Tx, username: str, key: str, body: str) -> str | None:
    row = orders.idempotency_key(tx, username, key)
    if row is None:
        return None
    if row["body"] != body:
        raise errors.IdempotencyKeyReused()
    return row["order_no"]


def _replay(backend: Backend, username: str, key: str, body: str) -> models.Order | None:
    with backend.store.read() as tx:
        order_no = _idempotent_order_no(tx, username, key, body)
    return get_order(backend, order_no, username) if order_no else None


def _insert_order(backend: Backend, tx: Tx, username: str, item_ids: list[str], now: float) -> str:
    """Every check of api.md in its order, then the order and its item locks (the
    student's row is locked: no other order of theirs is being made meanwhile)."""
    problems = profile_of(tx, username).profile_problems
    if problems:
        raise errors.ProfileIncomplete(problems=problems)
    receipt_type, lines = checked_items(tx, username, item_ids)
    order_no = add_order(backend, tx, username, receipt_type, lines, now)
    orders.lock_items(tx, order_no, [item_id for item_id, _, _ in lines])
    return order_no


def checked_items(
    tx: Tx, username: str, item_ids: list[str]
) -> tuple[str, list[tuple[str, str, int]]]:
    """The items an order may take, as ``(receipt type, [(id, name, amount)])``, or the
    refusal of api.md: unknown, mixed receipt types, already paid, in an unfinished order."""
    ids = list(dict.fromkeys(item_ids))
    by_id = {r["id"]: r for r in orders.fee_items_by_id(tx, username, ids)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise errors.ItemNotFound(item_ids=missing)
    items = [by_id[i] for i in ids]
    receipt_type = rules.receipt_type_of(r["kind"] for r in items)
    if receipt_type is None:
        raise errors.MixedReceiptTypes()
    paid = [r["id"] for r in items if r["amount_due"] - r["amount_paid"] <= 0]
    if paid:
        raise errors.ItemAlreadyPaid(item_ids=paid)
    locked = [r for r in items if r["lock_order"]]
    if locked:
        raise errors.ItemInOpenOrder(
            order_no=locked[0]["lock_order"],
            item_ids=[r["id"] for r in locked if r["lock_order"] == locked[0]["lock_order"]],
        )
    return receipt_type, [(r["id"], r["name"], r["amount_due"] - r["amount_paid"]) for r in items]


def add_order(
    backend: Backend,
    tx: Tx,
    username: str,
    receipt_type: str,
    lines: list[tuple[str, str, int]],
    now: float,
) -> str:
    """A new open order of ``lines`` under a fresh number; returns the number."""
    order_no = new_order_no(backend)
    while orders.order_no_taken(tx, order_no):
        order_no = new_order_no(backend)
    orders.add_order(
        tx,
        order_no=order_no,
        username=username,
        receipt_type=receipt_type,
        total=sum(amount for _, _, amount in lines),
        payee=backend.config.payee,
        created_at=now,
        expires_at=min(now + backend.config.order_ttl_seconds, backend.time.todays_close()),
    )
    orders.add_order_items(tx, order_no, lines)
    return order_no


# ---------------------------------------------------------------------------- recording
def record_payment(
    backend: Backend,
    order_no: str,
    trade_no: str,
    transaction_id: str,
    paid_at: float,
    amount: int,
    how: str,
) -> bool:
    """Apply a confirmed gateway payment to its order, exactly once.

    Returns True when this call recorded it. A payment that cannot be applied (the
    order closed, or paid by another trade) is kept as a discrepancy for finance.
    """
    with backend.store.write() as tx:
        row = order_row(tx, order_no, None, lock=True)
        if row["transaction_id"] == transaction_id:
            return False
        kept = (trade_no, amount)  # money the order does not keep, to give back
        if amount != row["total"]:
            detail = f"gateway {amount} vs order {row['total']} ({transaction_id})"
            keep_discrepancy(backend, tx, order_no, "amount_mismatch", detail, *kept)
            return False
        if row["status"] not in ("open", "awaiting_confirmation"):
            detail = f"trade {trade_no} transaction {transaction_id}"
            keep_discrepancy(backend, tx, order_no, f"paid_when_{row['status']}", detail, *kept)
            return False
        channel = orders.order_trade_channel(tx, order_no, trade_no)
        if channel is None:
            keep_discrepancy(backend, tx, order_no, "unknown_trade", trade_no, *kept)
            return False
        mark_paid(backend, tx, row, paid_at, channel, transaction_id)
        orders.release_items(tx, order_no)
        backend.audit(
            "gateway", "order.paid", order_no, {"via": how, "transaction_id": transaction_id}
        )
    backend.events.publish(order_no)
    return True


def mark_paid(
    backend: Backend, tx: Tx, row: Record, paid_at: float, channel: str, transaction_id: str
) -> None:
    """The order (its row held) is paid: receipt number and check code drawn, its items
    paid, the receipt notice sent."""
    order_no = row["order_no"]
    receipt_no = f"R{backend.time.at(paid_at):%Y%m%d}{secrets.randbelow(10**8):08d}"
    orders.mark_paid(
        tx,
        order_no,
        paid_at=paid_at,
        channel=channel,
        transaction_id=transaction_id,
        receipt_no=receipt_no,
        check_code=f"{secrets.randbelow(10**6):06d}",  # 校验码, fixed from now on
    )
    items = orders.order_items_of(tx, order_no)
    for item in items:
        if not orders.pay_item(tx, item["item_id"], item["amount"], order_no):
            # the item lock (or the counter's check under the student's row) makes this
            # impossible; refuse loudly if not
            raise errors.InternalError("fee item would be paid twice")
    send_receipt(backend, tx, row, items, receipt_no, transaction_id)


def receipt(backend: Backend, order_no: str, username: str | None) -> models.Receipt:
    """A paid order's receipt as fixed at payment (``username``: only that student's;
    None: staff), with what succeeded refunds of its items gave back."""
    with backend.store.read() as tx:
        row = order_row(tx, order_no, username)
        if row["status"] != "paid":
            raise errors.OrderNotPaid()
        items = orders.order_items_of(tx, order_no)
        payer = orders.contacts_of(tx, row["username"])
        given_back = _items_refunded(tx, order_no)
    refunded = row["refunded"]
    if refunded <= 0:
        status = "issued"
    else:
        status = "refunded" if refunded >= row["total"] else "partially_refunded"
    return models.Receipt(
        receipt_no=row["receipt_no"],
        check_code=row["check_code"],
        receipt_type=row["receipt_type"],
        order_no=order_no,
        payer=models.ReceiptPayer(username=row["username"], name=payer["name"]),
        payee=row["payee"],
        items=[
            models.ReceiptItem(
                id=i["item_id"],
                name=i["name"],
                amount=i["amount"],
                refunded=given_back.get(i["item_id"], 0),
            )
            for i in items
        ],
        total=row["total"],
        refunded=refunded,
        channel=row["channel"],
        transaction_id=row["transaction_id"],
        paid_at=backend.time.at(row["paid_at"]),
        status=status,
    )


def _items_refunded(tx: Tx, order_no: str) -> dict[str, int]:
    """What the order's succeeded ``items`` refunds gave back, by item."""
    succeeded = {
        r["refund_no"]
        for r in money.refunds_of_order(tx, order_no)
        if r["kind"] == "items" and r["status"] == "succeeded"
    }
    given: dict[str, int] = {}
    for r in money.refund_items_of_order(tx, order_no):
        if r["refund_no"] in succeeded:
            given[r["item_id"]] = given.get(r["item_id"], 0) + r["amount"]
    return given


def send_receipt(
    backend: Backend, tx: Tx, order: Record, items: list[Record], receipt_no: str, txn: str
) -> None:
    """The e-receipt notice by SMS and e-mail, to whichever of the student's contacts on
    file now are valid."""
    user = orders.contacts_of(tx, order["username"])
    names = "、".join(r["name"] for r in items)
    body = (
        f"【{order['payee']}】缴费成功：订单号 {order['order_no']}，票据号 {receipt_no}，"
        f"项目 {names}，金额 {rules.format_fen(order['total'])}，收款方 {order['payee']}，"
        f"交易号 {txn}。"
    )
    if user["phone"] and rules.phone_problem(user["phone"]) is None:
        backend.send_message(tx, "sms", user["phone"], body)
    if user["email"] and rules.email_problem(user["email"]) is None:
        backend.send_message(tx, "email", user["email"], body)


def keep_discrepancy(
    backend: Backend,
    tx: Tx,
    order_no: str,
    kind: str,
    detail: str,
    trade_no: str | None = None,
    amount: int | None = None,
) -> None:
    """Keep a discrepancy for the finance office; the same one again adds nothing (the
    caller holds the order's row). ``trade_no`` and ``amount``: a trade that took money
    the order does not keep, kept once whatever found it (notify, query, reconciliation)."""
    if trade_no is not None and money.trade_discrepancy(tx, trade_no) is not None:
        return
    if not orders.has_discrepancy(tx, order_no, kind, detail):
        values = {"trade_no": trade_no, "amount": amount}
        orders.add_discrepancy(tx, backend.time.ts(), order_no, kind, detail, **values)


def apply_trade(backend: Backend, order_no: str, trade_no: str, how: str) -> bool:
    """Ask the gateway about a trade; record it if paid. True when the trade is paid."""
    view = backend.gateway.query(trade_no)
    if view.state != "SUCCESS":
        return False
    record_payment(backend, order_no, trade_no, view.transaction_id, view.paid_at, view.amount, how)
    return True


# ---------------------------------------------------------------------------- closing
def _close_trade_then_release(
    backend: Backend, row: Record, status: str, reason: str, how: str
) -> str:
    """Close the order's trade at the gateway first; only then release its items.

    Returns ``closed``, ``paid`` (the trade was paid: recorded) or ``in_progress``.
    """
    trade_no = row["pay_trade_no"]
    if trade_no:
        outcome = backend.gateway.close(trade_no)
        if outcome == "paid":
            apply_trade(backend, row["order_no"], trade_no, how)
            return "paid"
        if outcome == "in_progress":
            return "in_progress"
    with backend.store.write() as tx:
        current = order_row(tx, row["order_no"], None, lock=True)
        if current["status"] != status:
            return "changed"
        orders.mark_closed(tx, row["order_no"], reason, backend.time.ts())
        orders.release_items(tx, row["order_no"])
        backend.audit(
            "system" if how == "expiry" else row["username"], f"order.{reason}", row["order_no"]
        )
    backend.events.publish(row["order_no"])
    return "closed"


def expire_if_due(backend: Backend, order_no: str) -> None:
    """An open order past its time: paid at the gateway -> paid; else closed there, then here."""
    with backend.store.read() as tx:
        row = orders.order_row(tx, order_no)
    if row is None or row["status"] != "open" or row["expires_at"] > backend.time.ts():
        return
    with backend.order_locks.hold(order_no):
        with backend.store.read() as tx:
            row = order_row(tx, order_no, None)
        if row["status"] == "open" and row["expires_at"] <= backend.time.ts():
            _close_trade_then_release(backend, row, "open", "expired", "expiry")


def sweep_user(backend: Backend, username: str | None) -> None:
    """Expire the student's open orders that are past their time (None: everyone's)."""
    with backend.store.read() as tx:
        due = orders.due_order_nos(tx, backend.time.ts(), username)
    for order_no in due:
        expire_if_due(backend, order_no)


def sweep_all(backend: Backend) -> None:
    """The periodic sweep: expire every open order that is past its time."""
    sweep_user(backend, None)


# ---------------------------------------------------------------------------- order actions
def _open_row(backend: Backend, order_no: str, username: str | None) -> Record:
    with backend.store.read() as tx:
        row = order_row(tx, order_no, username)
    if row["status"] != "open":
        raise errors.OrderNotOpen(status=row["status"])
    return row


def pay(backend: Backend, session: Session, order_no: str, channel: str) -> models.PayQr:
    """Issue the QR for a channel; switching channel closes the old trade first."""
    with backend.store.read() as tx:
        order_row(tx, order_no, session.username)
    expire_if_due(backend, order_no)
    with backend.order_locks.hold(order_no):
        row = _open_row(backend, order_no, session.username)
        now = backend.time.ts()
        if row["expires_at"] <= now:  # could not expire: the old trade is still paying
            raise errors.PaymentInProgress()
        _check_hours(backend)
        if row["pay_trade_no"]:
            if row["pay_channel"] == channel:
                return _qr(backend, row, channel, row["qr_url"])
            outcome = backend.gateway.close(row["pay_trade_no"])
            if outcome == "paid":
                apply_trade(backend, order_no, row["pay_trade_no"], "channel_switch")
                raise errors.OrderAlreadyPaid()
            if outcome == "in_progress":
                raise errors.PaymentInProgress()
        with backend.store.read() as tx:
            items = [
                {"id": r["item_id"], "name": r["name"], "amount": r["amount"]}
                for r in orders.order_items_of(tx, order_no)
            ]
        trade_no, qr_url = backend.gateway.create_trade(
            order_no, channel, row["total"], row["payee"], items, row["expires_at"]
        )
        with backend.store.write() as tx:
            orders.add_order_trade(tx, trade_no, order_no, channel, now)
            orders.set_payment(
                tx,
                order_no,
                channel=channel,
                trade_no=trade_no,
                qr_url=qr_url,
                issued_at=now,
                expires_at=row["expires_at"],
            )
            row = order_row(tx, order_no, None)
            backend.audit(session.username, "order.pay", order_no, {"channel": channel})
    backend.events.publish(order_no)
    return _qr(backend, row, channel, qr_url)


def _qr(backend: Backend, row: Record, channel: str, qr_url: str) -> models.PayQr:
    return models.PayQr(
        order_no=row["order_no"],
        channel=channel,
        qr_url=qr_url,
        payee=row["payee"],
        amount=row["total"],
        expires_at=backend.time.at(row["expires_at"]),
    )


def query(backend: Backend, order_no: str, username: str | None) -> models.Order:
    """Ask the gateway now and apply its answer (also what staff use)."""
    with backend.store.read() as tx:
        row = order_row(tx, order_no, username)
    if row["status"] in ("open", "awaiting_confirmation"):
        with backend.order_locks.hold(order_no):
            with backend.store.read() as tx:
                trades = orders.order_trade_nos(tx, order_no)
            for trade in trades:
                if apply_trade(backend, order_no, trade, "query"):
                    break
    return get_order(backend, order_no, username)


def cancel(backend: Backend, session: Session, order_no: str) -> models.Order:
    with backend.store.read() as tx:
        order_row(tx, order_no, session.username)
    expire_if_due(backend, order_no)
    with backend.order_locks.hold(order_no):
        row = _open_row(backend, order_no, session.username)
        if _close_trade_then_release(backend, row, "open", "cancelled", "cancel") == "in_progress":
            raise errors.PaymentInProgress()
    return get_order(backend, order_no, session.username)


def claim_paid(backend: Backend, session: Session, order_no: str) -> models.Order:
    """Claim "I have paid": the gateway first; unpaid -> awaiting_confirmation, items locked."""
    with backend.store.read() as tx:
        order_row(tx, order_no, session.username)
    expire_if_due(backend, order_no)
    with backend.order_locks.hold(order_no):
        row = _open_row(backend, order_no, session.username)
        paid = row["pay_trade_no"] and apply_trade(
            backend, order_no, row["pay_trade_no"], "claim_paid"
        )
        with backend.store.write() as tx:
            if not paid:
                orders.mark_awaiting_confirmation(tx, order_no)
            backend.audit(session.username, "order.claim_paid", order_no, {"paid": bool(paid)})
        if not paid:
            backend.events.publish(order_no)
    return get_order(backend, order_no, session.username)


# ---------------------------------------------------------------------------- notify
def handle_notify(backend: Backend, channel: str, body: models.GatewayNotify) -> None:
    """A signed gateway notify, trusted only once the gateway confirms it; idempotent.

    A notify for another channel than its path is refused as it is; one whose amount
    differs from the order's is a discrepancy (once, however often it comes); one the
    gateway's own query does not confirm (a forged notify signed with a stolen key)
    records nothing and is audited."""
    if body.channel != channel:
        raise errors.ValidationFailed(fields={"channel": "does not match the notify path"})
    with backend.store.read() as tx:
        row = order_row(tx, body.order_no, None)
    if body.trade_state != "SUCCESS" or body.transaction_id is None or body.paid_at is None:
        return
    if body.amount != row["total"]:
        with backend.store.write() as tx:
            order_row(tx, body.order_no, None, lock=True)  # its discrepancies, one at a time
            keep_discrepancy(
                backend,
                tx,
                body.order_no,
                "amount_mismatch",
                f"notify {body.amount} {body.channel} vs order {row['total']}",
            )
        raise errors.AmountMismatch(expected=row["total"], received=body.amount)
    with backend.order_locks.hold(body.order_no):
        view = _confirmed(backend, body)
        if view is None:
            backend.audit("gateway", "notify.unconfirmed", body.order_no, {"trade": body.trade_no})
            raise errors.NotifyUnconfirmed()
        record_payment(
            backend,
            body.order_no,
            view.trade_no,
            view.transaction_id,
            view.paid_at,
            view.amount,
            "notify",
        )


def _confirmed(backend: Backend, body: models.GatewayNotify):
    """The gateway's own view of the notified trade, if it says the same; else None."""
    try:
        view = backend.gateway.query(body.trade_no)
    except errors.TradeNotFound:
        return None
    same = (view.state, view.order_no, view.channel, view.amount, view.transaction_id) == (
        "SUCCESS",
        body.order_no,
        body.channel,
        body.amount,
        body.transaction_id,
    )
    return view if same else None


def close_awaiting(backend: Backend, order_no: str) -> str:
    """Reconciliation found no payment: close the trade at the gateway, then release."""
    with backend.store.read() as tx:
        row = order_row(tx, order_no, None)
    if row["status"] != "awaiting_confirmation":
        return "changed"
    return _close_trade_then_release(backend, row, "awaiting_confirmation", "released", "reconcile")
