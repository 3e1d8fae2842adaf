"""The payment invariants, read from the backend's store: what must hold at any moment.

No item paid twice or beyond what is due, no item in two unfinished orders, no
closed order with a trade left open, nothing given back twice, beyond what was paid or
without a second staff member, money in less refunds equal to what items hold and the
open discrepancies; once everything has settled, every gateway payment is recorded on
its order (or kept as a discrepancy) and receipted by SMS and e-mail.
"""

from __future__ import annotations

from typing import Any


def rows(server, sql: str, *args: Any) -> list[dict[str, Any]]:
    """The rows of one query on the backend's store, as dicts."""
    with server.backend.store.read() as conn:
        return [dict(r) for r in conn.execute(sql, args).fetchall()]


ALWAYS = {
    # an item is paid at most once, and never beyond what is due
    "overpaid": "SELECT id, amount_paid, amount_due FROM fee_items WHERE amount_paid > amount_due",
    "in two paid orders": "SELECT oi.item_id, COUNT(*) AS n FROM order_items oi"
    " JOIN orders o USING(order_no) WHERE o.status='paid' GROUP BY oi.item_id HAVING COUNT(*) > 1",
    "paid amount not from its one paid order": "SELECT * FROM (SELECT f.id, f.amount_paid,"
    " f.refunded, f.amount_due, (SELECT SUM(oi.amount) FROM order_items oi"
    "  JOIN orders o USING(order_no) WHERE oi.item_id=f.id AND o.status='paid') AS by_orders"
    " FROM fee_items f) AS paid"
    " WHERE by_orders IS NOT NULL"
    " AND (by_orders <> amount_paid + refunded OR by_orders <> amount_due + refunded)",
    # an item belongs to at most one unfinished order
    "in two unfinished orders": "SELECT oi.item_id, COUNT(*) AS n FROM order_items oi"
    " JOIN orders o USING(order_no) WHERE o.status IN ('open', 'awaiting_confirmation')"
    " GROUP BY oi.item_id HAVING COUNT(*) > 1",
    # api-money.md: nothing given back twice or beyond what was paid
    "order refunded beyond its total": "SELECT order_no, refunded, total FROM orders"
    " WHERE refunded < 0 OR refunded > total",
    "item refunded twice": "SELECT ri.item_id, COUNT(*) AS n FROM refund_items ri"
    " JOIN refunds r USING(refund_no) WHERE r.status IN ('pending', 'processing', 'succeeded')"
    " GROUP BY ri.item_id HAVING COUNT(*) > 1",
    "trade refunded twice": "SELECT trade_no, COUNT(*) AS n FROM refunds WHERE kind='trade'"
    " AND status IN ('pending', 'processing', 'succeeded') GROUP BY trade_no HAVING COUNT(*) > 1",
    "paid order's total less refunded unlike what its items hold": "SELECT * FROM"
    " (SELECT o.order_no, o.total - o.refunded AS kept, (SELECT SUM(f.amount_paid)"
    "  FROM order_items oi JOIN fee_items f ON f.id = oi.item_id"
    "  WHERE oi.order_no = o.order_no) AS held FROM orders o WHERE o.status = 'paid') AS k"
    " WHERE kept <> held",
    "refund at the gateway without a second staff member": "SELECT r.refund_no, r.status"
    " FROM refunds r WHERE (r.status IN ('processing', 'succeeded', 'failed')"
    "  AND (r.decided_by IS NULL OR r.decided_by = r.requested_by))"
    " OR (r.status IN ('pending', 'rejected')"
    "  AND EXISTS (SELECT 1 FROM gw_refunds g WHERE g.refund_no = r.refund_no))",
    "money in less refunds unlike what items hold and open discrepancies": "SELECT * FROM"
    " (SELECT (SELECT COALESCE(SUM(total), 0) FROM orders WHERE status = 'paid')"
    "  + (SELECT COALESCE(SUM(amount), 0) FROM discrepancies WHERE trade_no IS NOT NULL)"
    "  - (SELECT COALESCE(SUM(amount), 0) FROM refunds WHERE status = 'succeeded') AS kept,"
    "  (SELECT COALESCE(SUM(amount_paid), 0) FROM fee_items WHERE paid_order_no IS NOT NULL)"
    "  + (SELECT COALESCE(SUM(d.amount), 0) FROM discrepancies d WHERE d.trade_no IS NOT NULL"
    "   AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.kind = 'trade'"
    "    AND r.trade_no = d.trade_no AND r.status = 'succeeded')) AS held) AS m"
    " WHERE kept <> held",
    # a gateway trade is closed before its items are released
    "closed order with a trade not closed": "SELECT o.order_no, t.trade_no, t.state"
    " FROM orders o JOIN gw_trades t USING(order_no) WHERE o.status='closed'"
    " AND t.state <> 'CLOSED'",
}


def store_violations(server) -> dict[str, list[dict[str, Any]]]:
    """The invariants that hold at every moment, read from one consistent snapshot."""
    with server.backend.store.read() as conn:
        found = {name: [dict(r) for r in conn.execute(sql)] for name, sql in ALWAYS.items()}
    return {name: bad for name, bad in found.items() if bad}


def assert_store_invariants(server, *, settled: bool) -> None:
    """What the store must hold at any moment, and once everything has settled."""
    assert store_violations(server) == {}
    if not settled:
        return
    unrecorded = rows(
        server,
        "SELECT t.trade_no, t.order_no, t.transaction_id, o.status, o.transaction_id AS rec"
        " FROM gw_trades t JOIN orders o USING(order_no)"
        " WHERE t.state='SUCCESS' AND (o.transaction_id IS NULL OR o.transaction_id <>"
        " t.transaction_id OR o.status <> 'paid') AND t.trade_no NOT IN"
        " (SELECT trade_no FROM discrepancies WHERE trade_no IS NOT NULL)",
    )
    assert unrecorded == []
    assert rows(server, "SELECT trade_no FROM gw_trades WHERE state='PAYING'") == []
    unfinished = rows(
        server,
        "SELECT order_no, status FROM orders WHERE status IN ('open', 'awaiting_confirmation')",
    )
    assert unfinished == []
    paid = rows(server, "SELECT order_no FROM orders WHERE status='paid'")
    outbox = rows(server, "SELECT channel, body FROM outbox")
    for order in paid:
        channels = sorted(m["channel"] for m in outbox if order["order_no"] in m["body"])
        assert channels == ["email", "sms"], (order, channels)
