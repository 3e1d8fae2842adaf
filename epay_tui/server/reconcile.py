"""Reconciliation: the gateway's daily statement against the recorded orders."""

from __future__ import annotations

from datetime import date, datetime

from epay_tui.api import errors, models
from epay_tui.server import payments
from epay_tui.server.backend import Backend
from epay_tui.server.store import orders


def reconcile(backend: Backend, day: date, actor: str) -> models.ReconcileResult:
    """Paid at the gateway but unrecorded -> paid; awaiting with no payment -> released;
    recorded paid through a gateway but absent from its statement -> ``not_on_statement``."""
    statement = backend.gateway.statement(day)
    matched, recovered, released = 0, [], []
    discrepancies: list[models.Discrepancy] = []
    paid_orders = set()
    for trade in statement.trades:
        paid_orders.add(trade.order_no)
        try:
            order = payments.get_order(backend, trade.order_no, None)
        except errors.OrderNotFound:
            discrepancies.append(
                models.Discrepancy(
                    order_no=trade.order_no, kind="unknown_order", detail=trade.trade_no
                )
            )
            continue
        if order.transaction_id == trade.transaction_id:
            matched += 1
            continue
        with backend.order_locks.hold(trade.order_no):
            done = payments.record_payment(
                backend,
                trade.order_no,
                trade.trade_no,
                trade.transaction_id,
                trade.paid_at.timestamp(),
                trade.amount,
                "reconcile",
            )
        if done:
            recovered.append(trade.order_no)
        else:
            discrepancies.append(
                models.Discrepancy(
                    order_no=trade.order_no,
                    kind=f"unrecorded_{order.status}",
                    detail=f"trade {trade.trade_no} {trade.amount} {trade.transaction_id}",
                )
            )
    start = datetime(day.year, day.month, day.day, tzinfo=backend.time.zone).timestamp()
    end = start + 86400
    on_statement = {trade.transaction_id for trade in statement.trades}
    with backend.store.read() as tx:
        recorded = orders.paid_between(tx, start, end)
    for row in recorded:  # recorded paid, but the gateway never took that money
        if row["transaction_id"] not in on_statement:
            discrepancies.append(
                models.Discrepancy(
                    order_no=row["order_no"],
                    kind="not_on_statement",
                    detail=f"{row['channel']} {row['total']} {row['transaction_id']}",
                )
            )
    with backend.store.read() as tx:
        waiting = orders.awaiting_before(tx, end)
    for order_no in waiting:
        if order_no in paid_orders:
            continue
        with backend.order_locks.hold(order_no):
            outcome = payments.close_awaiting(backend, order_no)
        if outcome == "closed":
            released.append(order_no)
        elif outcome == "paid":
            recovered.append(order_no)
        elif outcome == "in_progress":
            discrepancies.append(
                models.Discrepancy(
                    order_no=order_no,
                    kind="in_progress",
                    detail="the gateway reports a payment in progress",
                )
            )
    result = models.ReconcileResult(
        date=day,
        matched=matched,
        recovered=recovered,
        released=released,
        discrepancies=discrepancies,
    )
    backend.audit(
        actor,
        "staff.reconcile",
        day.isoformat(),
        {
            "matched": matched,
            "recovered": recovered,
            "released": released,
            "discrepancies": len(discrepancies),
        },
    )
    return result
