"""Fees, orders and what hangs on them: item locks, order items, the order's gateway
trades, idempotency keys, discrepancies, receipts sent and reconciliation's reads.

Data access only: the payment rules stay with the callers. A read marked ``lock``
takes the row for the rest of the transaction (``FOR UPDATE`` on PostgreSQL; SQLite's
writers are serialised anyway). An item is in at most one unfinished order by
``item_locks``' primary key, an idempotency key is used once by its table's.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, delete, func, select, update

from epay_tui.server.store.engine import Query, Record, Tx, inserting
from epay_tui.server.store.schema import (
    discrepancies,
    fee_items,
    idempotency,
    item_locks,
    order_items,
    order_trades,
    orders,
    outbox,
    users,
)

# ---------------------------------------------------------------------------- fees
_LOCK_STUDENT = Query(
    select(users.c.username).where(users.c.username == bindparam("username")).with_for_update()
)
_FEES_WITH_LOCKS = (
    select(fee_items, item_locks.c.order_no.label("lock_order"))
    .outerjoin(item_locks, item_locks.c.item_id == fee_items.c.id)
    .where(fee_items.c.username == bindparam("username"))
)
"""The student's fee items, each with the unfinished order holding it (``lock_order``)."""
_FEE_ITEMS = Query(_FEES_WITH_LOCKS.order_by(fee_items.c.tag_rank, fee_items.c.position))
_PAID = fee_items.c.amount_paid + bindparam("amount")
_PAY_ITEM = Query(
    update(fee_items)
    .where(fee_items.c.id == bindparam("item_id"), fee_items.c.amount_due >= _PAID)
    .values(amount_paid=_PAID, paid_order_no=bindparam("order_no"))
)
_LOCK_ITEM = inserting(item_locks, "item_id", "order_no")
_RELEASE_ITEMS = Query(delete(item_locks).where(item_locks.c.order_no == bindparam("order_no")))


def lock_student(tx: Tx, username: str) -> None:
    """Take the student's ``users`` row: the one lock for everything a student pays,
    held until the transaction ends (reads after it see what the last holder wrote)."""
    tx.execute(_LOCK_STUDENT, {"username": username})


def fee_items_of(tx: Tx, username: str) -> list[Record]:
    """Every fee item of the student, by tag and position, with ``lock_order``."""
    return tx.execute(_FEE_ITEMS, {"username": username}).fetchall()


def fee_items_by_id(tx: Tx, username: str, item_ids: Iterable[str]) -> list[Record]:
    """Those of ``item_ids`` that are the student's fee items, with ``lock_order``
    (built per call: the ``IN`` list's length varies)."""
    query = _FEES_WITH_LOCKS.where(fee_items.c.id.in_(list(item_ids)))
    return tx.execute(query, {"username": username}).fetchall()


def pay_item(tx: Tx, item_id: str, amount: int, order_no: str) -> bool:
    """Add ``amount`` to the item's paid amount by ``order_no``; False (nothing changed)
    if that would pay beyond what is due."""
    values = {"item_id": item_id, "amount": amount, "order_no": order_no}
    return tx.execute(_PAY_ITEM, values).rowcount == 1


def lock_items(tx: Tx, order_no: str, item_ids: Iterable[str]) -> None:
    """Hold the items for ``order_no`` (an item already held fails the primary key)."""
    for item_id in item_ids:
        tx.execute(_LOCK_ITEM, {"item_id": item_id, "order_no": order_no})


def release_items(tx: Tx, order_no: str) -> None:
    """Let go of the items ``order_no`` holds."""
    tx.execute(_RELEASE_ITEMS, {"order_no": order_no})


# ---------------------------------------------------------------------------- orders
_ORDER_ROW = Query(select(orders).where(orders.c.order_no == bindparam("order_no")))
_ORDER_ROW_LOCKED = Query(_ORDER_ROW.statement.with_for_update())
_ORDER_NO_TAKEN = Query(select(orders.c.order_no).where(orders.c.order_no == bindparam("order_no")))
_ORDERS_OF = Query(
    select(orders)
    .where(orders.c.username == bindparam("username"))
    .order_by(orders.c.created_at.desc(), orders.c.seq.desc())
)
_DUE = select(orders.c.order_no).where(
    orders.c.status == "open", orders.c.expires_at <= bindparam("now")
)
_DUE_ORDER_NOS = Query(_DUE)
_DUE_ORDER_NOS_OF = Query(_DUE.where(orders.c.username == bindparam("username")))
_USERNAME = bindparam("username")
_ADD_ORDER = inserting(
    orders,
    "order_no",
    "receipt_type",
    "total",
    "payee",
    "created_at",
    "expires_at",
    username=_USERNAME,
    seq=select(func.coalesce(func.max(orders.c.seq), 0) + 1)  # after the student's others
    .where(orders.c.username == _USERNAME)
    .scalar_subquery(),
    status="open",
)
_ADD_ORDER_ITEM = inserting(order_items, "order_no", "position", "item_id", "name", "amount")
_ORDER_ITEMS_OF = Query(
    select(order_items.c.item_id, order_items.c.name, order_items.c.amount)
    .where(order_items.c.order_no == bindparam("order_no"))
    .order_by(order_items.c.position)
)
_UPDATE_ORDER = update(orders).where(orders.c.order_no == bindparam("order_no"))
_SET_PAYMENT = Query(
    _UPDATE_ORDER.values(
        pay_channel=bindparam("channel"),
        pay_trade_no=bindparam("trade_no"),
        qr_url=bindparam("qr_url"),
        pay_issued_at=bindparam("issued_at"),
        pay_expires_at=bindparam("expires_at"),
    )
)
_MARK_PAID = Query(
    _UPDATE_ORDER.values(
        status="paid",
        paid_at=bindparam("paid_at"),
        channel=bindparam("channel"),
        transaction_id=bindparam("transaction_id"),
        receipt_no=bindparam("receipt_no"),
        check_code=bindparam("check_code"),
    )
)
_MARK_CLOSED = Query(
    _UPDATE_ORDER.values(
        status="closed", close_reason=bindparam("reason"), closed_at=bindparam("closed_at")
    )
)
_MARK_AWAITING = Query(
    _UPDATE_ORDER.where(orders.c.status == "open").values(status="awaiting_confirmation")
)


def order_row(tx: Tx, order_no: str, *, lock: bool = False) -> Record | None:
    """The order, or None; ``lock`` takes its row (before its status changes)."""
    return tx.execute(_ORDER_ROW_LOCKED if lock else _ORDER_ROW, {"order_no": order_no}).fetchone()


def order_no_taken(tx: Tx, order_no: str) -> bool:
    return tx.execute(_ORDER_NO_TAKEN, {"order_no": order_no}).fetchone() is not None


def orders_of(tx: Tx, username: str) -> list[Record]:
    """The student's orders, newest first."""
    return tx.execute(_ORDERS_OF, {"username": username}).fetchall()


def due_order_nos(tx: Tx, now: float, username: str | None = None) -> list[str]:
    """Open orders past their time (of one student, or of all)."""
    if username is None:
        due = tx.execute(_DUE_ORDER_NOS, {"now": now})
    else:
        due = tx.execute(_DUE_ORDER_NOS_OF, {"now": now, "username": username})
    return [r["order_no"] for r in due]


def add_order(
    tx: Tx,
    *,
    order_no: str,
    username: str,
    receipt_type: str,
    total: int,
    payee: str,
    created_at: float,
    expires_at: float,
) -> None:
    """A new open order, after the student's others (``seq``)."""
    values = {
        "order_no": order_no,
        "username": username,
        "receipt_type": receipt_type,
        "total": total,
        "payee": payee,
        "created_at": created_at,
        "expires_at": expires_at,
    }
    tx.execute(_ADD_ORDER, values)


def add_order_items(tx: Tx, order_no: str, items: Iterable[tuple[str, str, int]]) -> None:
    """The order's ``(item id, name, amount)`` in the order given."""
    for position, (item_id, name, amount) in enumerate(items):
        values = {"order_no": order_no, "position": position, "item_id": item_id}
        tx.execute(_ADD_ORDER_ITEM, {**values, "name": name, "amount": amount})


def order_items_of(tx: Tx, order_no: str) -> list[Record]:
    """The order's ``item_id``, ``name`` and ``amount``, in the order chosen."""
    return tx.execute(_ORDER_ITEMS_OF, {"order_no": order_no}).fetchall()


def set_payment(
    tx: Tx,
    order_no: str,
    *,
    channel: str,
    trade_no: str,
    qr_url: str,
    issued_at: float,
    expires_at: float,
) -> None:
    """The order's current QR: its channel, trade and link."""
    values = {"order_no": order_no, "channel": channel, "trade_no": trade_no, "qr_url": qr_url}
    tx.execute(_SET_PAYMENT, {**values, "issued_at": issued_at, "expires_at": expires_at})


def mark_paid(
    tx: Tx,
    order_no: str,
    *,
    paid_at: float,
    channel: str,
    transaction_id: str,
    receipt_no: str,
    check_code: str,
) -> None:
    values = {"order_no": order_no, "paid_at": paid_at, "channel": channel}
    receipt = {"receipt_no": receipt_no, "check_code": check_code}
    tx.execute(_MARK_PAID, {**values, "transaction_id": transaction_id, **receipt})


def mark_closed(tx: Tx, order_no: str, reason: str, closed_at: float) -> None:
    tx.execute(_MARK_CLOSED, {"order_no": order_no, "reason": reason, "closed_at": closed_at})


def mark_awaiting_confirmation(tx: Tx, order_no: str) -> None:
    """An open order becomes ``awaiting_confirmation`` (any other stays as it is)."""
    tx.execute(_MARK_AWAITING, {"order_no": order_no})


# ---------------------------------------------------------------------------- trades
_ADD_ORDER_TRADE = inserting(order_trades, "trade_no", "order_no", "channel", "created_at")
_OF_ORDER = order_trades.c.order_no == bindparam("order_no")
_ORDER_TRADE_NOS = Query(
    select(order_trades.c.trade_no).where(_OF_ORDER).order_by(order_trades.c.created_at.desc())
)
_ORDER_TRADE_CHANNEL = Query(
    select(order_trades.c.channel).where(
        order_trades.c.trade_no == bindparam("trade_no"), _OF_ORDER
    )
)


def add_order_trade(tx: Tx, trade_no: str, order_no: str, channel: str, created_at: float) -> None:
    """A gateway trade opened for the order."""
    values = {"trade_no": trade_no, "order_no": order_no, "channel": channel}
    tx.execute(_ADD_ORDER_TRADE, {**values, "created_at": created_at})


def order_trade_nos(tx: Tx, order_no: str) -> list[str]:
    """The order's gateway trades, newest first."""
    return [r["trade_no"] for r in tx.execute(_ORDER_TRADE_NOS, {"order_no": order_no})]


def order_trade_channel(tx: Tx, order_no: str, trade_no: str) -> str | None:
    """The channel of the order's trade ``trade_no``; None if the order has no such trade."""
    values = {"order_no": order_no, "trade_no": trade_no}
    row = tx.execute(_ORDER_TRADE_CHANNEL, values).fetchone()
    return None if row is None else row["channel"]


# ---------------------------------------------------------------------------- idempotency
_IDEMPOTENCY_KEY = Query(
    select(idempotency.c.body, idempotency.c.order_no).where(
        idempotency.c.username == bindparam("username"), idempotency.c.key == bindparam("key")
    )
)
_REMEMBER_KEY = inserting(idempotency, "username", "key", "body", "order_no")


def idempotency_key(tx: Tx, username: str, key: str) -> Record | None:
    """What the student's ``key`` was used for: ``body`` and ``order_no``, or None."""
    return tx.execute(_IDEMPOTENCY_KEY, {"username": username, "key": key}).fetchone()


def remember_key(tx: Tx, username: str, key: str, body: str, order_no: str) -> None:
    """The key made ``order_no`` (a key used twice fails the primary key)."""
    values = {"username": username, "key": key, "body": body, "order_no": order_no}
    tx.execute(_REMEMBER_KEY, values)


# ---------------------------------------------------------------------------- discrepancies
_HAS_DISCREPANCY = Query(
    select(discrepancies.c.id)
    .where(
        discrepancies.c.order_no == bindparam("order_no"),
        discrepancies.c.kind == bindparam("kind"),
        discrepancies.c.detail == bindparam("detail"),
    )
    .limit(1)
)
_ADD_DISCREPANCY = inserting(
    discrepancies, "at", "order_no", "kind", "detail", "trade_no", "amount"
)


def has_discrepancy(tx: Tx, order_no: str, kind: str, detail: str) -> bool:
    values = {"order_no": order_no, "kind": kind, "detail": detail}
    return tx.execute(_HAS_DISCREPANCY, values).fetchone() is not None


def add_discrepancy(
    tx: Tx,
    at: float,
    order_no: str,
    kind: str,
    detail: str,
    *,
    trade_no: str | None = None,
    amount: int | None = None,
) -> None:
    """A discrepancy; ``trade_no`` and ``amount`` name money taken that the order did
    not keep."""
    values = {"at": at, "order_no": order_no, "kind": kind, "detail": detail}
    tx.execute(_ADD_DISCREPANCY, {**values, "trade_no": trade_no, "amount": amount})


# ---------------------------------------------------------------------------- receipts
_CONTACTS_OF = Query(
    select(users.c.phone, users.c.email, users.c.name).where(
        users.c.username == bindparam("username")
    )
)
_OUTBOX_MESSAGES = Query(select(outbox).order_by(outbox.c.id))


def contacts_of(tx: Tx, username: str) -> Record | None:
    """Where the user's receipts go: ``phone`` and ``email`` (either may be None), and
    the ``name`` they are made out to."""
    return tx.execute(_CONTACTS_OF, {"username": username}).fetchone()


def outbox_messages(tx: Tx) -> list[Record]:
    """Every SMS and e-mail sent (receipts among them), in the order sent."""
    return tx.execute(_OUTBOX_MESSAGES, {}).fetchall()


# ---------------------------------------------------------------------------- reconciliation
_PAID_BETWEEN = Query(
    select(orders.c.order_no, orders.c.channel, orders.c.total, orders.c.transaction_id)
    .where(
        orders.c.status == "paid",
        orders.c.transaction_id.is_not(None),
        orders.c.paid_at >= bindparam("start"),
        orders.c.paid_at < bindparam("end"),
    )
    .order_by(orders.c.paid_at)
)
_AWAITING_BEFORE = Query(
    select(orders.c.order_no)
    .where(orders.c.status == "awaiting_confirmation", orders.c.created_at < bindparam("end"))
    .order_by(orders.c.created_at, orders.c.order_no)
)


def paid_between(tx: Tx, start: float, end: float) -> list[Record]:
    """Orders recorded paid through a gateway in ``[start, end)``, by time of payment:
    ``order_no``, ``channel``, ``total``, ``transaction_id``."""
    return tx.execute(_PAID_BETWEEN, {"start": start, "end": end}).fetchall()


def awaiting_before(tx: Tx, end: float) -> list[str]:
    """Orders awaiting confirmation that were made before ``end``, oldest first."""
    return [r["order_no"] for r in tx.execute(_AWAITING_BEFORE, {"end": end})]
