"""The payment-gateway sandbox's own tables: its trades and the notifies it owes.

Data access only: when a trade may change state is the gateway's to decide. A read
marked ``lock`` takes the rows for the rest of the transaction (``FOR UPDATE`` on
PostgreSQL).
"""

from __future__ import annotations

import json

from sqlalchemy import bindparam, func, select, update

from epay_tui.server.store.engine import Query, Record, Tx, inserting
from epay_tui.server.store.schema import gw_notifies, gw_refunds, gw_trades

PAYING = "PAYING"
"""A ``slow`` payment's state: money left the payer, the bank has not answered."""


# ---------------------------------------------------------------------------- trades
_ADD_TRADE = inserting(
    gw_trades,
    "trade_no",
    "pay_token",
    "order_no",
    "channel",
    "amount",
    "payee",
    "items",
    "created_at",
    "expires_at",
    state="NOTPAY",
)
_TRADE_ROW = Query(select(gw_trades).where(gw_trades.c.trade_no == bindparam("trade_no")))
_TRADE_ROW_LOCKED = Query(_TRADE_ROW.statement.with_for_update())
_TRADE_BY_TOKEN = Query(select(gw_trades).where(gw_trades.c.pay_token == bindparam("pay_token")))
_TRADE_BY_TOKEN_LOCKED = Query(_TRADE_BY_TOKEN.statement.with_for_update())
_UPDATE_TRADE = update(gw_trades).where(gw_trades.c.trade_no == bindparam("trade_no"))
_SET_STATE = Query(_UPDATE_TRADE.values(state=bindparam("state")))
_START_PAYING = Query(
    _UPDATE_TRADE.values(
        state=PAYING,
        settles_at=bindparam("settles_at"),
        notify_mode=bindparam("notify_mode"),
        transaction_id=bindparam("transaction_id"),
    )
)
_SETTLE = Query(_UPDATE_TRADE.values(state="SUCCESS", paid_at=bindparam("paid_at")))
_PAYING_DUE = select(gw_trades.c.trade_no, gw_trades.c.settles_at, gw_trades.c.notify_mode).where(
    gw_trades.c.state == PAYING, gw_trades.c.settles_at <= bindparam("now")
)
_ANY_PAYING_DUE = Query(_PAYING_DUE.limit(1))
_PAYING_DUE_LOCKED = Query(_PAYING_DUE.with_for_update(skip_locked=True))
"""Skipping rows another worker settles now: claiming several rows at once must never
wait on one (two claims would each hold what the other waits for)."""
_SETTLED_BETWEEN = Query(
    select(gw_trades)
    .where(
        gw_trades.c.state == "SUCCESS",
        gw_trades.c.paid_at >= bindparam("start"),
        gw_trades.c.paid_at < bindparam("end"),
    )
    .order_by(gw_trades.c.paid_at)
)


def add_trade(
    tx: Tx,
    *,
    trade_no: str,
    pay_token: str,
    order_no: str,
    channel: str,
    amount: int,
    payee: str,
    items: list[dict],
    created_at: float,
    expires_at: float,
) -> None:
    """A new unpaid trade (``NOTPAY``)."""
    values = {
        "trade_no": trade_no,
        "pay_token": pay_token,
        "order_no": order_no,
        "channel": channel,
        "amount": amount,
        "payee": payee,
        "items": json.dumps(items, ensure_ascii=False),
        "created_at": created_at,
        "expires_at": expires_at,
    }
    tx.execute(_ADD_TRADE, values)


def trade_row(tx: Tx, trade_no: str, *, lock: bool = False) -> Record | None:
    query = _TRADE_ROW_LOCKED if lock else _TRADE_ROW
    return tx.execute(query, {"trade_no": trade_no}).fetchone()


def trade_by_token(tx: Tx, pay_token: str, *, lock: bool = False) -> Record | None:
    """The trade a pay page's token stands for."""
    query = _TRADE_BY_TOKEN_LOCKED if lock else _TRADE_BY_TOKEN
    return tx.execute(query, {"pay_token": pay_token}).fetchone()


def set_state(tx: Tx, trade_no: str, state: str) -> None:
    tx.execute(_SET_STATE, {"trade_no": trade_no, "state": state})


def start_paying(
    tx: Tx, trade_no: str, *, settles_at: float, notify_mode: str, transaction_id: str
) -> None:
    """The payer paid: the trade is :data:`PAYING` until ``settles_at``."""
    values = {"trade_no": trade_no, "settles_at": settles_at, "notify_mode": notify_mode}
    tx.execute(_START_PAYING, {**values, "transaction_id": transaction_id})


def settle(tx: Tx, trade_no: str, paid_at: float) -> None:
    """The money arrived: the trade is ``SUCCESS``, paid at ``paid_at``."""
    tx.execute(_SETTLE, {"trade_no": trade_no, "paid_at": paid_at})


def any_paying_due(tx: Tx, now: float) -> bool:
    """Whether a :data:`PAYING` trade's bank answer has arrived by ``now``."""
    return tx.execute(_ANY_PAYING_DUE, {"now": now}).fetchone() is not None


def paying_due(tx: Tx, now: float) -> list[Record]:
    """:data:`PAYING` trades that settle by ``now``, locked: ``trade_no``, ``settles_at``,
    ``notify_mode``."""
    return tx.execute(_PAYING_DUE_LOCKED, {"now": now}).fetchall()


def settled_between(tx: Tx, start: float, end: float) -> list[Record]:
    """Successful trades paid in ``[start, end)``, by time of payment."""
    return tx.execute(_SETTLED_BETWEEN, {"start": start, "end": end}).fetchall()


# ---------------------------------------------------------------------------- notifies
_QUEUE_NOTIFY = inserting(gw_notifies, "trade_no", "due_at")
_NOTIFY_DUE = (gw_notifies.c.state == "pending", gw_notifies.c.due_at <= bindparam("now"))
_ANY_NOTIFY_DUE = Query(select(gw_notifies.c.id).where(*_NOTIFY_DUE).limit(1))
_CLAIM_DUE_NOTIFIES = Query(
    update(gw_notifies)
    .where(
        gw_notifies.c.id.in_(
            select(gw_notifies.c.id).where(*_NOTIFY_DUE).with_for_update(skip_locked=True)
        )
    )
    .values(state="sent")
    .returning(gw_notifies.c.id, gw_notifies.c.trade_no)
)
"""A queue's claim: the due notifies no other worker is claiming (``SKIP LOCKED``). A
plain ``UPDATE … WHERE due`` in several workers at once deadlocked under load."""
_OF_NOTIFY = gw_notifies.c.id == bindparam("notify_id")
_NOTIFY_ATTEMPTS = Query(select(gw_notifies.c.attempts).where(_OF_NOTIFY).with_for_update())
_RETRY_NOTIFY = Query(
    update(gw_notifies)
    .where(_OF_NOTIFY)
    .values(state="pending", due_at=bindparam("due_at"), attempts=bindparam("attempts"))
)
_GIVE_UP_NOTIFY = Query(update(gw_notifies).where(_OF_NOTIFY).values(state="failed"))


def queue_notifies(tx: Tx, trade_no: str, due_at: float, copies: int) -> None:
    """``copies`` notifies of the trade, due at ``due_at``."""
    for _ in range(copies):
        tx.execute(_QUEUE_NOTIFY, {"trade_no": trade_no, "due_at": due_at})


def any_notify_due(tx: Tx, now: float) -> bool:
    return tx.execute(_ANY_NOTIFY_DUE, {"now": now}).fetchone() is not None


def claim_due_notifies(tx: Tx, now: float) -> list[Record]:
    """Mark the due notifies sent; their ``id`` and ``trade_no``."""
    return tx.execute(_CLAIM_DUE_NOTIFIES, {"now": now}).fetchall()


def notify_attempts(tx: Tx, notify_id: int) -> int | None:
    """How often the notify was tried again, its row locked; None if there is no such."""
    row = tx.execute(_NOTIFY_ATTEMPTS, {"notify_id": notify_id}).fetchone()
    return None if row is None else row["attempts"]


def retry_notify(tx: Tx, notify_id: int, due_at: float, attempts: int) -> None:
    """The notify is due again at ``due_at``, as attempt ``attempts``."""
    values = {"notify_id": notify_id, "due_at": due_at, "attempts": attempts}
    tx.execute(_RETRY_NOTIFY, values)


def give_up_notify(tx: Tx, notify_id: int) -> None:
    tx.execute(_GIVE_UP_NOTIFY, {"notify_id": notify_id})


# ---------------------------------------------------------------------------- refunds
_REFUND = Query(select(gw_refunds).where(gw_refunds.c.refund_no == bindparam("refund_no")))
_REFUNDED = Query(
    select(func.coalesce(func.sum(gw_refunds.c.amount), 0)).where(
        gw_refunds.c.trade_no == bindparam("trade_no"), gw_refunds.c.state == "SUCCESS"
    )
)
_ADD_REFUND = inserting(
    gw_refunds, "refund_no", "trade_no", "amount", "state", "reason", "created_at"
)


def refund_row(tx: Tx, refund_no: str) -> Record | None:
    return tx.execute(_REFUND, {"refund_no": refund_no}).fetchone()


def refunded(tx: Tx, trade_no: str) -> int:
    """What the trade's successful refunds gave back, in fen."""
    return int(tx.execute(_REFUNDED, {"trade_no": trade_no}).fetchone()[0])


def add_refund(
    tx: Tx, refund_no: str, trade_no: str, amount: int, state: str, reason: str, at: float
) -> None:
    values = {"refund_no": refund_no, "trade_no": trade_no, "amount": amount, "state": state}
    tx.execute(_ADD_REFUND, {**values, "reason": reason, "created_at": at})
