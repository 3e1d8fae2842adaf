"""Fees and orders: item locks, idempotent creation, pay, query, cancel, claim, expiry.

The three invariants live here: an item is paid at most once (the item lock and
``paid_order_no`` are taken inside ``BEGIN IMMEDIATE``); every successful gateway
payment ends recorded on its order (:func:`record_payment` from notify, query,
claim, expiry and reconciliation); a gateway trade is closed before its items are
released (:func:`_close_trade_then_release`). Steps on one order are serialised
with a per-order lock so a notify and a cancel cannot interleave.
"""

from __future__ import annotations

import json
import secrets
import sqlite3

from epay_tui.api import errors, models, rules
from epay_tui.server.accounts import Session, profile_of
from epay_tui.server.backend import Backend


# ---------------------------------------------------------------------------- fees
def fees_of(conn: sqlite3.Connection, username: str) -> models.Fees:
    rows = conn.execute(
        "SELECT f.*, l.order_no AS lock_order FROM fee_items f"
        " LEFT JOIN item_locks l ON l.item_id=f.id"
        " WHERE f.username=? ORDER BY f.tag_rank, f.position",
        (username,),
    ).fetchall()
    tags: dict[str, list[models.FeeItem]] = {}
    for r in rows:
        outstanding = r["amount_due"] - r["amount_paid"]
        if r["lock_order"]:
            state, order_no = "in_order", r["lock_order"]
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
    with backend.store.read() as conn:
        return fees_of(conn, username)


# ---------------------------------------------------------------------------- reading orders
def _order_model(backend: Backend, conn: sqlite3.Connection, row: sqlite3.Row) -> models.Order:
    at = backend.time.at
    items = conn.execute(
        "SELECT item_id, name, amount FROM order_items WHERE order_no=? ORDER BY position",
        (row["order_no"],),
    ).fetchall()
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
    )


def _row(conn: sqlite3.Connection, order_no: str, username: str | None) -> sqlite3.Row:
    """The order row; another user's order answers exactly like an unknown one."""
    row = conn.execute("SELECT * FROM orders WHERE order_no=?", (order_no,)).fetchone()
    if row is None or (username is not None and row["username"] != username):
        raise errors.OrderNotFound()
    return row


def get_order(backend: Backend, order_no: str, username: str | None) -> models.Order:
    with backend.store.read() as conn:
        _row(conn, order_no, username)
    expire_if_due(backend, order_no)
    with backend.store.read() as conn:
        return _order_model(backend, conn, _row(conn, order_no, username))


def list_orders(backend: Backend, username: str) -> models.Orders:
    sweep_user(backend, username)
    with backend.store.read() as conn:
        rows = conn.execute(
            "SELECT * FROM orders WHERE username=? ORDER BY created_at DESC, seq DESC",
            (username,),
        ).fetchall()
        return models.Orders(orders=[_order_model(backend, conn, r) for r in rows])


def orders_of(backend: Backend, conn: sqlite3.Connection, username: str) -> list[models.Order]:
    rows = conn.execute(
        "SELECT * FROM orders WHERE username=? ORDER BY created_at DESC, seq DESC", (username,)
    ).fetchall()
    return [_order_model(backend, conn, r) for r in rows]


# ---------------------------------------------------------------------------- creating
def _body_key(item_ids: list[str]) -> str:
    return json.dumps(sorted(set(item_ids)))


def _new_order_no(backend: Backend) -> str:
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
    with backend.store.write() as conn:
        replay_no = _idempotent_order_no(conn, username, key, body)
        if replay_no is None:
            order_no = _insert_order(backend, conn, username, item_ids, now)
            conn.execute(
                "INSERT INTO idempotency(username, key, body, order_no) VALUES (?,?,?,?)",
                (username, key, body, order_no),
            )
    if replay_no is not None:
        return get_order(backend, replay_no, username)
    backend.audit(username, "order.created", order_no, {"items": sorted(set(item_ids))})
    backend.events.publish(order_no)
    return get_order(backend, order_no, username)


def _idempotent_order_no(
    conn: sqlite3.Connection, username: str, key: str, body: str
) -> str | None:
    row = conn.execute(
        "SELECT body, order_no FROM idempotency WHERE username=? AND key=?", (username, key)
    ).fetchone()
    if row is None:
        return None
    if row["body"] != body:
        raise errors.IdempotencyKeyReused()
    return row["order_no"]


def _replay(backend: Backend, username: str, key: str, body: str) -> models.Order | None:
    with backend.store.read() as conn:
        order_no = _idempotent_order_no(conn, username, key, body)
    return get_order(backend, order_no, username) if order_no else None


def _insert_order(
    backend: Backend, conn: sqlite3.Connection, username: str, item_ids: list[str], now: float
) -> str:
    """Every check of api.md in its order, then the order and its item locks."""
    problems = profile_of(conn, username).profile_problems
    if problems:
        raise errors.ProfileIncomplete(problems=problems)
    ids = list(dict.fromkeys(item_ids))
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT f.*, l.order_no AS lock_order FROM fee_items f"  # noqa: S608
        f" LEFT JOIN item_locks l ON l.item_id=f.id WHERE f.id IN ({marks}) AND f.username=?",
        (*ids, username),
    ).fetchall()
    by_id = {r["id"]: r for r in rows}
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
    order_no = _new_order_no(backend)
    while conn.execute("SELECT 1 FROM orders WHERE order_no=?", (order_no,)).fetchone():
        order_no = _new_order_no(backend)
    expires = min(now + backend.config.order_ttl_seconds, backend.time.todays_close())
    total = sum(r["amount_due"] - r["amount_paid"] for r in items)
    seq = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM orders WHERE username=?", (username,)
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO orders(order_no, username, seq, status, receipt_type, total, payee,"
        " created_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (order_no, username, seq, "open", receipt_type, total, backend.config.payee, now, expires),
    )
    for position, r in enumerate(items):
        conn.execute(
            "INSERT INTO order_items(order_no, position, item_id, name, amount)"
            " VALUES (?,?,?,?,?)",
            (order_no, position, r["id"], r["name"], r["amount_due"] - r["amount_paid"]),
        )
        conn.execute("INSERT INTO item_locks(item_id, order_no) VALUES (?,?)", (r["id"], order_no))
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
    with backend.store.write() as conn:
        row = _row(conn, order_no, None)
        if row["transaction_id"] == transaction_id:
            return False
        if amount != row["total"]:
            _discrepancy(
                backend,
                conn,
                order_no,
                "amount_mismatch",
                f"gateway {amount} vs order {row['total']} ({transaction_id})",
            )
            return False
        if row["status"] not in ("open", "awaiting_confirmation"):
            _discrepancy(
                backend,
                conn,
                order_no,
                f"paid_when_{row['status']}",
                f"trade {trade_no} transaction {transaction_id}",
            )
            return False
        channel = conn.execute(
            "SELECT channel FROM order_trades WHERE trade_no=? AND order_no=?", (trade_no, order_no)
        ).fetchone()
        if channel is None:
            _discrepancy(backend, conn, order_no, "unknown_trade", trade_no)
            return False
        receipt_no = f"R{backend.time.at(paid_at):%Y%m%d}{secrets.randbelow(10**8):08d}"
        conn.execute(
            "UPDATE orders SET status='paid', paid_at=?, channel=?, transaction_id=?, receipt_no=?"
            " WHERE order_no=?",
            (paid_at, channel["channel"], transaction_id, receipt_no, order_no),
        )
        for item in conn.execute(
            "SELECT item_id, amount FROM order_items WHERE order_no=?", (order_no,)
        ).fetchall():
            updated = conn.execute(
                "UPDATE fee_items SET amount_paid = amount_paid + ?, paid_order_no=?"
                " WHERE id=? AND amount_paid + ? <= amount_due",
                (item["amount"], order_no, item["item_id"], item["amount"]),
            ).rowcount
            if updated != 1:  # the item lock makes this impossible; refuse loudly if not
                raise errors.InternalError("fee item would be paid twice")
        conn.execute("DELETE FROM item_locks WHERE order_no=?", (order_no,))
        _send_receipt(backend, conn, row, receipt_no, transaction_id)
    backend.audit("gateway", "order.paid", order_no, {"via": how, "transaction_id": transaction_id})
    backend.events.publish(order_no)
    return True


def _send_receipt(
    backend: Backend, conn: sqlite3.Connection, order: sqlite3.Row, receipt_no: str, txn: str
) -> None:
    user = conn.execute(
        "SELECT phone, email FROM users WHERE username=?", (order["username"],)
    ).fetchone()
    names = "、".join(
        r["name"]
        for r in conn.execute(
            "SELECT name FROM order_items WHERE order_no=? ORDER BY position", (order["order_no"],)
        )
    )
    body = (
        f"【{order['payee']}】缴费成功：订单号 {order['order_no']}，票据号 {receipt_no}，"
        f"项目 {names}，金额 {rules.format_fen(order['total'])}，收款方 {order['payee']}，"
        f"交易号 {txn}。"
    )
    if user["phone"]:
        backend.send_message(conn, "sms", user["phone"], body)
    if user["email"]:
        backend.send_message(conn, "email", user["email"], body)


def _discrepancy(
    backend: Backend, conn: sqlite3.Connection, order_no: str, kind: str, detail: str
) -> None:
    """Keep a discrepancy for the finance office; the same one again adds nothing."""
    if conn.execute(
        "SELECT 1 FROM discrepancies WHERE order_no=? AND kind=? AND detail=?",
        (order_no, kind, detail),
    ).fetchone():
        return
    conn.execute(
        "INSERT INTO discrepancies(at, order_no, kind, detail) VALUES (?,?,?,?)",
        (backend.time.ts(), order_no, kind, detail),
    )


def _apply_trade(backend: Backend, order_no: str, trade_no: str, how: str) -> bool:
    """Ask the gateway about a trade; record it if paid. True when the trade is paid."""
    view = backend.gateway.query(trade_no)
    if view.state != "SUCCESS":
        return False
    record_payment(backend, order_no, trade_no, view.transaction_id, view.paid_at, view.amount, how)
    return True


# ---------------------------------------------------------------------------- closing
def _close_trade_then_release(
    backend: Backend, row: sqlite3.Row, status: str, reason: str, how: str
) -> str:
    """Close the order's trade at the gateway first; only then release its items.

    Returns ``closed``, ``paid`` (the trade was paid: recorded) or ``in_progress``.
    """
    trade_no = row["pay_trade_no"]
    if trade_no:
        outcome = backend.gateway.close(trade_no)
        if outcome == "paid":
            _apply_trade(backend, row["order_no"], trade_no, how)
            return "paid"
        if outcome == "in_progress":
            return "in_progress"
    with backend.store.write() as conn:
        current = _row(conn, row["order_no"], None)
        if current["status"] != status:
            return "changed"
        conn.execute(
            "UPDATE orders SET status='closed', close_reason=?, closed_at=? WHERE order_no=?",
            (reason, backend.time.ts(), row["order_no"]),
        )
        conn.execute("DELETE FROM item_locks WHERE order_no=?", (row["order_no"],))
    backend.audit(
        "system" if how == "expiry" else row["username"], f"order.{reason}", row["order_no"]
    )
    backend.events.publish(row["order_no"])
    return "closed"


def expire_if_due(backend: Backend, order_no: str) -> None:
    """An open order past its time: paid at the gateway -> paid; else closed there, then here."""
    with backend.store.read() as conn:
        row = conn.execute("SELECT * FROM orders WHERE order_no=?", (order_no,)).fetchone()
    if row is None or row["status"] != "open" or row["expires_at"] > backend.time.ts():
        return
    with backend.order_locks.hold(order_no):
        with backend.store.read() as conn:
            row = _row(conn, order_no, None)
        if row["status"] == "open" and row["expires_at"] <= backend.time.ts():
            _close_trade_then_release(backend, row, "open", "expired", "expiry")


def sweep_user(backend: Backend, username: str) -> None:
    with backend.store.read() as conn:
        due = conn.execute(
            "SELECT order_no FROM orders WHERE username=? AND status='open' AND expires_at<=?",
            (username, backend.time.ts()),
        ).fetchall()
    for r in due:
        expire_if_due(backend, r["order_no"])


def sweep_all(backend: Backend) -> None:
    """The periodic sweep: expire every open order that is past its time."""
    with backend.store.read() as conn:
        due = conn.execute(
            "SELECT order_no FROM orders WHERE status='open' AND expires_at<=?",
            (backend.time.ts(),),
        ).fetchall()
    for r in due:
        expire_if_due(backend, r["order_no"])


# ---------------------------------------------------------------------------- order actions
def _open_row(backend: Backend, order_no: str, username: str | None) -> sqlite3.Row:
    with backend.store.read() as conn:
        row = _row(conn, order_no, username)
    if row["status"] != "open":
        raise errors.OrderNotOpen(status=row["status"])
    return row


def pay(backend: Backend, session: Session, order_no: str, channel: str) -> models.PayQr:
    """Issue the QR for a channel; switching channel closes the old trade first."""
    with backend.store.read() as conn:
        _row(conn, order_no, session.username)
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
                _apply_trade(backend, order_no, row["pay_trade_no"], "channel_switch")
                raise errors.OrderAlreadyPaid()
            if outcome == "in_progress":
                raise errors.PaymentInProgress()
        with backend.store.read() as conn:
            items = [
                dict(r)
                for r in conn.execute(
                    "SELECT item_id AS id, name, amount FROM order_items WHERE order_no=?"
                    " ORDER BY position",
                    (order_no,),
                )
            ]
        trade_no, qr_url = backend.gateway.create_trade(
            order_no, channel, row["total"], row["payee"], items, row["expires_at"]
        )
        with backend.store.write() as conn:
            conn.execute(
                "INSERT INTO order_trades(trade_no, order_no, channel, created_at)"
                " VALUES (?,?,?,?)",
                (trade_no, order_no, channel, now),
            )
            conn.execute(
                "UPDATE orders SET pay_channel=?, pay_trade_no=?, qr_url=?, pay_issued_at=?,"
                " pay_expires_at=? WHERE order_no=?",
                (channel, trade_no, qr_url, now, row["expires_at"], order_no),
            )
            row = _row(conn, order_no, None)
    backend.audit(session.username, "order.pay", order_no, {"channel": channel})
    backend.events.publish(order_no)
    return _qr(backend, row, channel, qr_url)


def _qr(backend: Backend, row: sqlite3.Row, channel: str, qr_url: str) -> models.PayQr:
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
    with backend.store.read() as conn:
        row = _row(conn, order_no, username)
    if row["status"] in ("open", "awaiting_confirmation"):
        with backend.order_locks.hold(order_no):
            for trade in _trades(backend, order_no):
                if _apply_trade(backend, order_no, trade, "query"):
                    break
    return get_order(backend, order_no, username)


def _trades(backend: Backend, order_no: str) -> list[str]:
    with backend.store.read() as conn:
        return [
            r["trade_no"]
            for r in conn.execute(
                "SELECT trade_no FROM order_trades WHERE order_no=? ORDER BY created_at DESC",
                (order_no,),
            )
        ]


def cancel(backend: Backend, session: Session, order_no: str) -> models.Order:
    with backend.store.read() as conn:
        _row(conn, order_no, session.username)
    expire_if_due(backend, order_no)
    with backend.order_locks.hold(order_no):
        row = _open_row(backend, order_no, session.username)
        if _close_trade_then_release(backend, row, "open", "cancelled", "cancel") == "in_progress":
            raise errors.PaymentInProgress()
    return get_order(backend, order_no, session.username)


def claim_paid(backend: Backend, session: Session, order_no: str) -> models.Order:
    """Claim "I have paid": the gateway first; unpaid -> awaiting_confirmation, items locked."""
    with backend.store.read() as conn:
        _row(conn, order_no, session.username)
    expire_if_due(backend, order_no)
    with backend.order_locks.hold(order_no):
        row = _open_row(backend, order_no, session.username)
        paid = row["pay_trade_no"] and _apply_trade(
            backend, order_no, row["pay_trade_no"], "claim_paid"
        )
        if not paid:
            with backend.store.write() as conn:
                conn.execute(
                    "UPDATE orders SET status='awaiting_confirmation' WHERE order_no=?"
                    " AND status='open'",
                    (order_no,),
                )
            backend.events.publish(order_no)
    backend.audit(session.username, "order.claim_paid", order_no, {"paid": bool(paid)})
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
    with backend.store.read() as conn:
        row = _row(conn, body.order_no, None)
    if body.trade_state != "SUCCESS" or body.transaction_id is None or body.paid_at is None:
        return
    if body.amount != row["total"]:
        with backend.store.write() as conn:
            _discrepancy(
                backend,
                conn,
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
    with backend.store.read() as conn:
        row = _row(conn, order_no, None)
    if row["status"] != "awaiting_confirmation":
        return "changed"
    return _close_trade_then_release(backend, row, "awaiting_confirmation", "released", "reconcile")
