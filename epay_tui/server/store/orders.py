"""Fees, orders and what hangs on them: item locks, order items, the order's gateway
trades, idempotency keys, discrepancies, receipts sent and reconciliation's reads.

Data access only: the payment rules stay with the callers. A read marked ``lock``
takes the row for the rest of the transaction (``FOR UPDATE`` on PostgreSQL; SQLite's
writers are serialised anyway). An item is in at most one unfinished order by
``item_locks``' primary key, an idempotency key is used once by its table's.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Select, delete, func, insert, select, update

from epay_tui.server.store.engine import Record, Tx
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
def lock_student(tx: Tx, username: str) -> None:
    """Take the student's ``users`` row: the one lock for everything a student pays,
    held until the transaction ends (reads after it see what the last holder wrote)."""
    tx.execute(select(users.c.username).where(users.c.username == username).with_for_update())


def _fees_with_locks(username: str) -> Select:
    """The student's fee items, each with the unfinished order holding it (``lock_order``)."""
    return (
        select(fee_items, item_locks.c.order_no.label("lock_order"))
        .outerjoin(item_locks, item_locks.c.item_id == fee_items.c.id)
        .where(fee_items.c.username == username)
    )


def fee_items_of(tx: Tx, username: str) -> list[Record]:
    """Every fee item of the student, by tag and position, with ``lock_order``."""
    query = _fees_with_locks(username).order_by(fee_items.c.tag_rank, fee_items.c.position)
    return tx.execute(query).fetchall()


def fee_items_by_id(tx: Tx, username: str, item_ids: Iterable[str]) -> list[Record]:
    """Those of ``item_ids`` that are the student's fee items, with ``lock_order``."""
    query = _fees_with_locks(username).where(fee_items.c.id.in_(list(item_ids)))
    return tx.execute(query).fetchall()


def pay_item(tx: Tx, item_id: str, amount: int, order_no: str) -> bool:
    """Add ``amount`` to the item's paid amount by ``order_no``; False (nothing changed)
    if that would pay beyond what is due."""
    paid = fee_items.c.amount_paid + amount
    changed = tx.execute(
        update(fee_items)
        .where(fee_items.c.id == item_id, paid <= fee_items.c.amount_due)
        .values(amount_paid=paid, paid_order_no=order_no)
    )
    return changed.rowcount == 1


def lock_items(tx: Tx, order_no: str, item_ids: Iterable[str]) -> None:
    """Hold the items for ``order_no`` (an item already held fails the primary key)."""
    tx.execute(insert(item_locks), [{"item_id": i, "order_no": order_no} for i in item_ids])


def release_items(tx: Tx, order_no: str) -> None:
    """Let go of the items ``order_no`` holds."""
    tx.execute(delete(item_locks).where(item_locks.c.order_no == order_no))


# ---------------------------------------------------------------------------- orders
def order_row(tx: Tx, order_no: str, *, lock: bool = False) -> Record | None:
    """The order, or None; ``lock`` takes its row (before its status changes)."""
    query = select(orders).where(orders.c.order_no == order_no)
    return tx.execute(query.with_for_update() if lock else query).fetchone()


def order_no_taken(tx: Tx, order_no: str) -> bool:
    query = select(orders.c.order_no).where(orders.c.order_no == order_no)
    return tx.execute(query).fetchone() is not None


def orders_of(tx: Tx, username: str) -> list[Record]:
    """The student's orders, newest first."""
    query = (
        select(orders)
        .where(orders.c.username == username)
        .order_by(orders.c.created_at.desc(), orders.c.seq.desc())
    )
    return tx.execute(query).fetchall()


def due_order_nos(tx: Tx, now: float, username: str | None = None) -> list[str]:
    """Open orders past their time (of one student, or of all)."""
    query = select(orders.c.order_no).where(orders.c.status == "open", orders.c.expires_at <= now)
    if username is not None:
        query = query.where(orders.c.username == username)
    return [r["order_no"] for r in tx.execute(query)]


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
    next_seq = (
        select(func.coalesce(func.max(orders.c.seq), 0) + 1)
        .where(orders.c.username == username)
        .scalar_subquery()
    )
    tx.execute(
        insert(orders).values(
            order_no=order_no,
            username=username,
            seq=next_seq,
            status="open",
            receipt_type=receipt_type,
            total=total,
            payee=payee,
            created_at=created_at,
            expires_at=expires_at,
        )
    )


def add_order_items(tx: Tx, order_no: str, items: Iterable[tuple[str, str, int]]) -> None:
    """The order's ``(item id, name, amount)`` in the order given."""
    tx.execute(
        insert(order_items),
        [
            {"order_no": order_no, "position": position, "item_id": i, "name": n, "amount": a}
            for position, (i, n, a) in enumerate(items)
        ],
    )


def order_items_of(tx: Tx, order_no: str) -> list[Record]:
    """The order's ``item_id``, ``name`` and ``amount``, in the order chosen."""
    query = (
        select(order_items.c.item_id, order_items.c.name, order_items.c.amount)
        .where(order_items.c.order_no == order_no)
        .order_by(order_items.c.position)
    )
    return tx.execute(query).fetchall()


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
    tx.execute(
        update(orders)
        .where(orders.c.order_no == order_no)
        .values(
            pay_channel=channel,
            pay_trade_no=trade_no,
            qr_url=qr_url,
            pay_issued_at=issued_at,
            pay_expires_at=expires_at,
        )
    )


def mark_paid(
    tx: Tx, order_no: str, *, paid_at: float, channel: str, transaction_id: str, receipt_no: str
) -> None:
    tx.execute(
        update(orders)
        .where(orders.c.order_no == order_no)
        .values(
            status="paid",
            paid_at=paid_at,
            channel=channel,
            transaction_id=transaction_id,
            receipt_no=receipt_no,
        )
    )


def mark_closed(tx: Tx, order_no: str, reason: str, closed_at: float) -> None:
    tx.execute(
        update(orders)
        .where(orders.c.order_no == order_no)
        .values(status="closed", close_reason=reason, closed_at=closed_at)
    )


def mark_awaiting_confirmation(tx: Tx, order_no: str) -> None:
    """An open order becomes ``awaiting_confirmation`` (any other stays as it is)."""
    tx.execute(
        update(orders)
        .where(orders.c.order_no == order_no, orders.c.status == "open")
        .values(status="awaiting_confirmation")
    )


# ---------------------------------------------------------------------------- trades
def add_order_trade(tx: Tx, trade_no: str, order_no: str, channel: str, created_at: float) -> None:
    """A gateway trade opened for the order."""
    tx.execute(
        insert(order_trades).values(
            trade_no=trade_no, order_no=order_no, channel=channel, created_at=created_at
        )
    )


def order_trade_nos(tx: Tx, order_no: str) -> list[str]:
    """The order's gateway trades, newest first."""
    query = (
        select(order_trades.c.trade_no)
        .where(order_trades.c.order_no == order_no)
        .order_by(order_trades.c.created_at.desc())
    )
    return [r["trade_no"] for r in tx.execute(query)]


def order_trade_channel(tx: Tx, order_no: str, trade_no: str) -> str | None:
    """The channel of the order's trade ``trade_no``; None if the order has no such trade."""
    query = select(order_trades.c.channel).where(
        order_trades.c.trade_no == trade_no, order_trades.c.order_no == order_no
    )
    row = tx.execute(query).fetchone()
    return None if row is None else row["channel"]


# ---------------------------------------------------------------------------- idempotency
def idempotency_key(tx: Tx, username: str, key: str) -> Record | None:
    """What the student's ``key`` was used for: ``body`` and ``order_no``, or None."""
    query = select(idempotency.c.body, idempotency.c.order_no).where(
        idempotency.c.username == username, idempotency.c.key == key
    )
    return tx.execute(query).fetchone()


def remember_key(tx: Tx, username: str, key: str, body: str, order_no: str) -> None:
    """The key made ``order_no`` (a key used twice fails the primary key)."""
    tx.execute(insert(idempotency).values(username=username, key=key, body=body, order_no=order_no))


# ---------------------------------------------------------------------------- discrepancies
def has_discrepancy(tx: Tx, order_no: str, kind: str, detail: str) -> bool:
    query = select(discrepancies.c.id).where(
        discrepancies.c.order_no == order_no,
        discrepancies.c.kind == kind,
        discrepancies.c.detail == detail,
    )
    return tx.execute(query.limit(1)).fetchone() is not None


def add_discrepancy(tx: Tx, at: float, order_no: str, kind: str, detail: str) -> None:
    tx.execute(insert(discrepancies).values(at=at, order_no=order_no, kind=kind, detail=detail))


# ---------------------------------------------------------------------------- receipts
def contacts_of(tx: Tx, username: str) -> Record | None:
    """Where the user's receipts go: ``phone`` and ``email`` (either may be None)."""
    query = select(users.c.phone, users.c.email).where(users.c.username == username)
    return tx.execute(query).fetchone()


def outbox_messages(tx: Tx) -> list[Record]:
    """Every SMS and e-mail sent (receipts among them), in the order sent."""
    return tx.execute(select(outbox).order_by(outbox.c.id)).fetchall()


# ---------------------------------------------------------------------------- reconciliation
def paid_between(tx: Tx, start: float, end: float) -> list[Record]:
    """Orders recorded paid through a gateway in ``[start, end)``, by time of payment:
    ``order_no``, ``channel``, ``total``, ``transaction_id``."""
    query = (
        select(orders.c.order_no, orders.c.channel, orders.c.total, orders.c.transaction_id)
        .where(
            orders.c.status == "paid",
            orders.c.transaction_id.is_not(None),
            orders.c.paid_at >= start,
            orders.c.paid_at < end,
        )
        .order_by(orders.c.paid_at)
    )
    return tx.execute(query).fetchall()


def awaiting_before(tx: Tx, end: float) -> list[str]:
    """Orders awaiting confirmation that were made before ``end``, oldest first."""
    query = (
        select(orders.c.order_no)
        .where(orders.c.status == "awaiting_confirmation", orders.c.created_at < end)
        .order_by(orders.c.created_at, orders.c.order_no)
    )
    return [r["order_no"] for r in tx.execute(query)]
