"""The money after payment (api-money.md): counter payments and the cashier's day,
refunds and what they claim, discrepancies with money to give back, staff members'
idempotency keys, receipt resends, arrears.

Data access only: the rules stay with :mod:`epay_tui.server.money`. A refund claims each
item (``item:ID``) and trade (``trade:NO``) it gives back in ``refund_claims``, whose
primary key lets one live refund hold it; a rejected or failed refund lets go, a
succeeded one keeps it, so nothing is given back twice. The callers decide holding the
order's row, so no two claims race to the key.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, bindparam, delete, func, or_, select, update

from epay_tui.server.store.engine import Query, Record, Tx, inserting
from epay_tui.server.store.schema import (
    discrepancies,
    fee_items,
    orders,
    receipt_resends,
    refund_claims,
    refund_items,
    refunds,
    staff_requests,
    users,
)

LIVE = ("pending", "processing", "succeeded")
"""A refund in one of these holds its claims."""

# ---------------------------------------------------------------------------- counter
_SET_COUNTER = Query(
    update(orders)
    .where(orders.c.order_no == bindparam("order_no"))
    .values(cashier=bindparam("cashier"), reference=bindparam("reference"))
)
_TRANSACTION_ORDER = Query(
    select(orders.c.order_no).where(orders.c.transaction_id == bindparam("transaction_id"))
)
_COUNTER_PAID = (
    select(
        orders.c.order_no,
        orders.c.username,
        users.c.name,
        orders.c.channel,
        orders.c.reference,
        orders.c.total,
        orders.c.paid_at,
        orders.c.cashier,
    )
    .join(users, users.c.username == orders.c.username)
    .where(
        orders.c.status == "paid",
        orders.c.cashier.is_not(None),
        orders.c.paid_at >= bindparam("start"),
        orders.c.paid_at < bindparam("end"),
    )
    .order_by(orders.c.paid_at, orders.c.order_no)
)
_COUNTER_PAID_ALL = Query(_COUNTER_PAID)
_COUNTER_PAID_BY = Query(_COUNTER_PAID.where(orders.c.cashier == bindparam("cashier")))


def set_counter(tx: Tx, order_no: str, cashier: str, reference: str | None) -> None:
    """The order was paid at the counter: who took it, and the slip number or note."""
    tx.execute(_SET_COUNTER, {"order_no": order_no, "cashier": cashier, "reference": reference})


def order_of_transaction(tx: Tx, transaction_id: str) -> str | None:
    """The order recorded paid by ``transaction_id``, if any."""
    row = tx.execute(_TRANSACTION_ORDER, {"transaction_id": transaction_id}).fetchone()
    return None if row is None else row["order_no"]


def counter_payments(tx: Tx, start: float, end: float, cashier: str | None) -> list[Record]:
    """Orders paid at the counter in ``[start, end)`` (by ``cashier``, or all), oldest
    first, with the student's ``name``."""
    values = {"start": start, "end": end}
    if cashier is None:
        return tx.execute(_COUNTER_PAID_ALL, values).fetchall()
    return tx.execute(_COUNTER_PAID_BY, {**values, "cashier": cashier}).fetchall()


# ---------------------------------------------------------------------------- staff keys
_STAFF_REQUEST = Query(
    select(staff_requests.c.body, staff_requests.c.result).where(
        staff_requests.c.staff == bindparam("staff"), staff_requests.c.key == bindparam("key")
    )
)
_REMEMBER_STAFF_REQUEST = inserting(staff_requests, "staff", "key", "body", "result")


def staff_request(tx: Tx, staff: str, key: str) -> Record | None:
    """What the staff member's ``key`` was used for: ``body`` and ``result``, or None."""
    return tx.execute(_STAFF_REQUEST, {"staff": staff, "key": key}).fetchone()


def remember_staff_request(tx: Tx, staff: str, key: str, body: str, result: str) -> None:
    values = {"staff": staff, "key": key, "body": body, "result": result}
    tx.execute(_REMEMBER_STAFF_REQUEST, values)


# ---------------------------------------------------------------------------- refunds
_REFUND = Query(select(refunds).where(refunds.c.refund_no == bindparam("refund_no")))
_REFUND_LOCKED = Query(_REFUND.statement.with_for_update())
_REFUNDS_ALL = Query(select(refunds).order_by(refunds.c.requested_at.desc(), refunds.c.refund_no))
_REFUNDS_IN = Query(
    select(refunds)
    .where(refunds.c.status == bindparam("status"))
    .order_by(refunds.c.requested_at.desc(), refunds.c.refund_no)
)
_REFUNDS_OF_ORDER = Query(
    select(refunds)
    .where(refunds.c.order_no == bindparam("order_no"))
    .order_by(refunds.c.requested_at, refunds.c.refund_no)
)
_ADD_REFUND = inserting(
    refunds,
    "refund_no",
    "kind",
    "order_no",
    "trade_no",
    "amount",
    "channel",
    "reason",
    "requested_by",
    "requested_at",
    status="pending",
)
_ADD_REFUND_ITEM = inserting(refund_items, "refund_no", "item_id", "amount")
_REFUND_ITEMS_OF_ORDER = Query(
    select(refund_items.c.refund_no, refund_items.c.item_id, refund_items.c.amount)
    .join(refunds, refunds.c.refund_no == refund_items.c.refund_no)
    .where(refunds.c.order_no == bindparam("order_no"))
)
_REFUND_ITEMS = Query(
    select(refund_items.c.item_id, refund_items.c.amount).where(
        refund_items.c.refund_no == bindparam("refund_no")
    )
)
_DECIDE = Query(
    update(refunds)
    .where(refunds.c.refund_no == bindparam("refund_no"), refunds.c.status == "pending")
    .values(
        status=bindparam("status"),
        decided_by=bindparam("decided_by"),
        decided_at=bindparam("decided_at"),
    )
)
_SETTLE = Query(
    update(refunds)
    .where(refunds.c.refund_no == bindparam("refund_no"), refunds.c.status == "processing")
    .values(status=bindparam("status"), settled_at=bindparam("settled_at"))
)
_CLAIM = inserting(refund_claims, "claim", "refund_no")
_RELEASE_CLAIMS = Query(
    delete(refund_claims).where(refund_claims.c.refund_no == bindparam("refund_no"))
)
_GIVE_BACK_ITEM = Query(
    update(fee_items)
    .where(fee_items.c.id == bindparam("item_id"), fee_items.c.amount_paid >= bindparam("amount"))
    .values(
        amount_paid=fee_items.c.amount_paid - bindparam("amount"),
        amount_due=fee_items.c.amount_due - bindparam("amount"),
        refunded=fee_items.c.refunded + bindparam("amount"),
    )
)
_ORDER_REFUNDED = Query(
    update(orders)
    .where(
        orders.c.order_no == bindparam("order_no"),
        orders.c.refunded + bindparam("amount") <= orders.c.total,
    )
    .values(refunded=orders.c.refunded + bindparam("amount"))
)


def refund_row(tx: Tx, refund_no: str, *, lock: bool = False) -> Record | None:
    """The refund, or None; ``lock`` takes its row (before its status changes)."""
    return tx.execute(_REFUND_LOCKED if lock else _REFUND, {"refund_no": refund_no}).fetchone()


def refund_rows(tx: Tx, status: str | None = None) -> list[Record]:
    """Every refund (or those in ``status``), newest first."""
    if status is None:
        return tx.execute(_REFUNDS_ALL, {}).fetchall()
    return tx.execute(_REFUNDS_IN, {"status": status}).fetchall()


def refunds_of_order(tx: Tx, order_no: str) -> list[Record]:
    """The order's refunds of either kind, oldest first."""
    return tx.execute(_REFUNDS_OF_ORDER, {"order_no": order_no}).fetchall()


def refund_items_of_order(tx: Tx, order_no: str) -> list[Record]:
    """``refund_no``, ``item_id``, ``amount`` of every item in the order's refunds."""
    return tx.execute(_REFUND_ITEMS_OF_ORDER, {"order_no": order_no}).fetchall()


def refund_items_of(tx: Tx, refund_no: str) -> list[Record]:
    return tx.execute(_REFUND_ITEMS, {"refund_no": refund_no}).fetchall()


def claimed(tx: Tx, claims: Iterable[str]) -> set[str]:
    """Those of ``claims`` a live refund holds (built per call: the list varies)."""
    wanted = list(claims)
    query = select(refund_claims.c.claim).where(refund_claims.c.claim.in_(wanted))
    return {r["claim"] for r in tx.execute(query)} if wanted else set()


def add_refund(
    tx: Tx,
    *,
    refund_no: str,
    kind: str,
    order_no: str,
    trade_no: str | None,
    items: list[tuple[str, int]],
    amount: int,
    channel: str,
    reason: str,
    requested_by: str,
    requested_at: float,
    claims: Iterable[str],
) -> None:
    """A pending refund, its ``(item id, amount)`` items, and its claims."""
    values = {"refund_no": refund_no, "kind": kind, "order_no": order_no, "trade_no": trade_no}
    asked = {"reason": reason, "requested_by": requested_by, "requested_at": requested_at}
    tx.execute(_ADD_REFUND, {**values, "amount": amount, "channel": channel, **asked})
    for item_id, item_amount in items:
        tx.execute(
            _ADD_REFUND_ITEM, {"refund_no": refund_no, "item_id": item_id, "amount": item_amount}
        )
    for claim in claims:
        tx.execute(_CLAIM, {"claim": claim, "refund_no": refund_no})


def decide(tx: Tx, refund_no: str, status: str, decided_by: str, decided_at: float) -> bool:
    """A pending refund becomes ``status``; False if it was not pending."""
    values = {"refund_no": refund_no, "status": status, "decided_by": decided_by}
    return tx.execute(_DECIDE, {**values, "decided_at": decided_at}).rowcount == 1


def settle(tx: Tx, refund_no: str, status: str, settled_at: float) -> bool:
    """A processing refund becomes ``succeeded`` or ``failed``; False if it was not
    processing."""
    values = {"refund_no": refund_no, "status": status, "settled_at": settled_at}
    return tx.execute(_SETTLE, values).rowcount == 1


def release_claims(tx: Tx, refund_no: str) -> None:
    """A rejected or failed refund lets go of what it claimed."""
    tx.execute(_RELEASE_CLAIMS, {"refund_no": refund_no})


def give_back_item(tx: Tx, item_id: str, amount: int) -> bool:
    """The item's paid and due amounts drop by ``amount`` (its ``refunded`` grows);
    False (nothing changed) if it does not hold that much."""
    return tx.execute(_GIVE_BACK_ITEM, {"item_id": item_id, "amount": amount}).rowcount == 1


def add_order_refunded(tx: Tx, order_no: str, amount: int) -> bool:
    """The order's ``refunded`` grows by ``amount``; False if it would pass its total."""
    return tx.execute(_ORDER_REFUNDED, {"order_no": order_no, "amount": amount}).rowcount == 1


# ---------------------------------------------------------------------------- discrepancies
_LIVE_TRADE_REFUND = (
    select(refunds.c.refund_no, refunds.c.status, refunds.c.trade_no)
    .where(refunds.c.kind == "trade", or_(*(refunds.c.status == s for s in LIVE)))
    .subquery()
)
_DISCREPANCIES = select(
    discrepancies,
    _LIVE_TRADE_REFUND.c.refund_no,
    _LIVE_TRADE_REFUND.c.status.label("refund_status"),
).outerjoin(_LIVE_TRADE_REFUND, _LIVE_TRADE_REFUND.c.trade_no == discrepancies.c.trade_no)
_NEWEST = (discrepancies.c.at.desc(), discrepancies.c.id.desc())
_ALL_DISCREPANCIES = Query(_DISCREPANCIES.order_by(*_NEWEST))
_OPEN_DISCREPANCIES = Query(
    _DISCREPANCIES.where(
        discrepancies.c.trade_no.is_not(None),
        discrepancies.c.amount.is_not(None),
        func.coalesce(_LIVE_TRADE_REFUND.c.status, "") != "succeeded",
    ).order_by(*_NEWEST)
)
_TRADE_DISCREPANCY = Query(
    select(discrepancies.c.id, discrepancies.c.amount)
    .where(discrepancies.c.trade_no == bindparam("trade_no"))
    .limit(1)
)


def discrepancy_rows(tx: Tx, open_only: bool) -> list[Record]:
    """Discrepancies newest first, each with the ``refund_no`` (and ``refund_status``) of
    the live refund of its trade; ``open_only``: money to give back, not yet given."""
    return tx.execute(_OPEN_DISCREPANCIES if open_only else _ALL_DISCREPANCIES, {}).fetchall()


def trade_discrepancy(tx: Tx, trade_no: str) -> Record | None:
    """The discrepancy kept for a trade that took money its order did not keep."""
    return tx.execute(_TRADE_DISCREPANCY, {"trade_no": trade_no}).fetchone()


# ---------------------------------------------------------------------------- resends
_RESENDS_SINCE = Query(
    select(receipt_resends.c.at)
    .where(
        receipt_resends.c.order_no == bindparam("order_no"),
        receipt_resends.c.at > bindparam("since"),
    )
    .order_by(receipt_resends.c.at)
)
_ADD_RESEND = inserting(receipt_resends, "order_no", "at")


def resends_since(tx: Tx, order_no: str, since: float) -> list[float]:
    """When the order's receipt was resent after ``since``, oldest first."""
    return [r["at"] for r in tx.execute(_RESENDS_SINCE, {"order_no": order_no, "since": since})]


def add_resend(tx: Tx, order_no: str, at: float) -> None:
    tx.execute(_ADD_RESEND, {"order_no": order_no, "at": at})


# ---------------------------------------------------------------------------- arrears
_CURRENT_TAG = Query(
    select(fee_items.c.tag).order_by(fee_items.c.tag_rank, fee_items.c.tag.desc()).limit(1)
)


def current_tag(tx: Tx) -> str | None:
    """The tag students see first (the lowest rank), or None with no fees at all."""
    row = tx.execute(_CURRENT_TAG, {}).fetchone()
    return None if row is None else row["tag"]


def arrears(tx: Tx, tag: str, department: str | None, class_name: str | None) -> list[Record]:
    """Students with something due in ``tag`` (``username``, ``name``, ``department``,
    ``class_name``, ``outstanding``), most owed first (built per call: its filters vary)."""
    owed = func.sum(fee_items.c.amount_due - fee_items.c.amount_paid)
    query = (
        select(
            users.c.username,
            users.c.name,
            users.c.department,
            users.c.class_name,
            owed.label("outstanding"),
        )
        .join(users, and_(users.c.username == fee_items.c.username, users.c.role == "student"))
        .where(fee_items.c.tag == tag)
        .group_by(users.c.username, users.c.name, users.c.department, users.c.class_name)
        .having(owed > 0)
        .order_by(owed.desc(), users.c.username)
    )
    if department:
        query = query.where(users.c.department == department)
    if class_name:
        query = query.where(users.c.class_name == class_name)
    return tx.execute(query).fetchall()
