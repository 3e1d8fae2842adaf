"""The payment invariants, read from the backend's store: what must hold at any moment.

No item paid twice or beyond what is due, no item in two unfinished orders, no
closed order with a trade left open; once everything has settled, every gateway
payment is recorded on its order and receipted by SMS and e-mail.
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
    " f.amount_due, (SELECT SUM(oi.amount) FROM order_items oi JOIN orders o USING(order_no)"
    "  WHERE oi.item_id=f.id AND o.status='paid') AS by_orders FROM fee_items f) AS paid"
    " WHERE by_orders IS NOT NULL AND (by_orders <> amount_paid OR by_orders <> amount_due)",
    # an item belongs to at most one unfinished order
    "in two unfinished orders": "SELECT oi.item_id, COUNT(*) AS n FROM order_items oi"
    " JOIN orders o USING(order_no) WHERE o.status IN ('open', 'awaiting_confirmation')"
    " GROUP BY oi.item_id HAVING COUNT(*) > 1",
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
        " t.transaction_id OR o.status <> 'paid')",
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
