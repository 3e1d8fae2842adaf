"""The payment-gateway sandbox's own tables: its trades and the notifies it owes.

Data access only: when a trade may change state is the gateway's to decide. A read
marked ``lock`` takes the rows for the rest of the transaction (``FOR UPDATE`` on
PostgreSQL).
"""

from __future__ import annotations

import json

from sqlalchemy import Select, insert, select, update

from epay_tui.server.store.engine import Record, Tx
from epay_tui.server.store.schema import gw_notifies, gw_trades

PAYING = "PAYING"
"""A ``slow`` payment's state: money left the payer, the bank has not answered."""


def _locked(query: Select, lock: bool) -> Select:
    return query.with_for_update() if lock else query


# ---------------------------------------------------------------------------- trades
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
    tx.execute(
        insert(gw_trades).values(
            trade_no=trade_no,
            pay_token=pay_token,
            order_no=order_no,
            channel=channel,
            amount=amount,
            payee=payee,
            items=json.dumps(items, ensure_ascii=False),
            state="NOTPAY",
            created_at=created_at,
            expires_at=expires_at,
        )
    )


def trade_row(tx: Tx, trade_no: str, *, lock: bool = False) -> Record | None:
    query = select(gw_trades).where(gw_trades.c.trade_no == trade_no)
    return tx.execute(_locked(query, lock)).fetchone()


def trade_by_token(tx: Tx, pay_token: str, *, lock: bool = False) -> Record | None:
    """The trade a pay page's token stands for."""
    query = select(gw_trades).where(gw_trades.c.pay_token == pay_token)
    return tx.execute(_locked(query, lock)).fetchone()


def set_state(tx: Tx, trade_no: str, state: str) -> None:
    tx.execute(update(gw_trades).where(gw_trades.c.trade_no == trade_no).values(state=state))


def start_paying(
    tx: Tx, trade_no: str, *, settles_at: float, notify_mode: str, transaction_id: str
) -> None:
    """The payer paid: the trade is :data:`PAYING` until ``settles_at``."""
    tx.execute(
        update(gw_trades)
        .where(gw_trades.c.trade_no == trade_no)
        .values(
            state=PAYING,
            settles_at=settles_at,
            notify_mode=notify_mode,
            transaction_id=transaction_id,
        )
    )


def settle(tx: Tx, trade_no: str, paid_at: float) -> None:
    """The money arrived: the trade is ``SUCCESS``, paid at ``paid_at``."""
    tx.execute(
        update(gw_trades)
        .where(gw_trades.c.trade_no == trade_no)
        .values(state="SUCCESS", paid_at=paid_at)
    )


def _paying_due(now: float) -> Select:
    return select(gw_trades.c.trade_no, gw_trades.c.settles_at, gw_trades.c.notify_mode).where(
        gw_trades.c.state == PAYING, gw_trades.c.settles_at <= now
    )


def any_paying_due(tx: Tx, now: float) -> bool:
    """Whether a :data:`PAYING` trade's bank answer has arrived by ``now``."""
    return tx.execute(_paying_due(now).limit(1)).fetchone() is not None


def paying_due(tx: Tx, now: float) -> list[Record]:
    """:data:`PAYING` trades that settle by ``now``, locked: ``trade_no``, ``settles_at``,
    ``notify_mode``."""
    return tx.execute(_paying_due(now).with_for_update()).fetchall()


def settled_between(tx: Tx, start: float, end: float) -> list[Record]:
    """Successful trades paid in ``[start, end)``, by time of payment."""
    paid_at = gw_trades.c.paid_at
    query = (
        select(gw_trades)
        .where(gw_trades.c.state == "SUCCESS", paid_at >= start, paid_at < end)
        .order_by(paid_at)
    )
    return tx.execute(query).fetchall()


# ---------------------------------------------------------------------------- notifies
def queue_notifies(tx: Tx, trade_no: str, due_at: float, copies: int) -> None:
    """``copies`` notifies of the trade, due at ``due_at``."""
    if copies:
        tx.execute(insert(gw_notifies), [{"trade_no": trade_no, "due_at": due_at}] * copies)


def any_notify_due(tx: Tx, now: float) -> bool:
    query = select(gw_notifies.c.id).where(
        gw_notifies.c.state == "pending", gw_notifies.c.due_at <= now
    )
    return tx.execute(query.limit(1)).fetchone() is not None


def claim_due_notifies(tx: Tx, now: float) -> list[Record]:
    """Mark the due notifies sent; their ``id`` and ``trade_no``."""
    claimed = (
        update(gw_notifies)
        .where(gw_notifies.c.state == "pending", gw_notifies.c.due_at <= now)
        .values(state="sent")
        .returning(gw_notifies.c.id, gw_notifies.c.trade_no)
    )
    return tx.execute(claimed).fetchall()


def notify_attempts(tx: Tx, notify_id: int) -> int | None:
    """How often the notify was tried again, its row locked; None if there is no such."""
    query = select(gw_notifies.c.attempts).where(gw_notifies.c.id == notify_id)
    row = tx.execute(query.with_for_update()).fetchone()
    return None if row is None else row["attempts"]


def retry_notify(tx: Tx, notify_id: int, due_at: float, attempts: int) -> None:
    """The notify is due again at ``due_at``, as attempt ``attempts``."""
    tx.execute(
        update(gw_notifies)
        .where(gw_notifies.c.id == notify_id)
        .values(state="pending", due_at=due_at, attempts=attempts)
    )


def give_up_notify(tx: Tx, notify_id: int) -> None:
    tx.execute(update(gw_notifies).where(gw_notifies.c.id == notify_id).values(state="failed"))
