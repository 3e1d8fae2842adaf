"""The backend's tables, one schema for SQLite and PostgreSQL (SQLAlchemy Core).

Times are seconds since the epoch (school time is applied on the way out); money is
integer fen. A database reaches this schema through the migrations beside this module.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()


def _text(name: str, **options) -> Column:
    return Column(name, Text, **options)


def _when(name: str, **options) -> Column:
    return Column(name, Double, **options)


settings = Table(
    "settings", metadata, _text("key", primary_key=True), _text("value", nullable=False)
)
users = Table(
    "users",
    metadata,
    _text("username", primary_key=True),
    _text("name", nullable=False),
    _text("role", nullable=False),
    _text("id_card_no"),
    _text("password_hash", nullable=False),
    *(_text(c, nullable=False, server_default="") for c in ("department", "major")),
    *(_text(c, nullable=False, server_default="") for c in ("class_name", "grade")),
    _text("phone"),
    _text("email"),
)
login_failures = Table(  # count: failures since the last right password; pending: checks now
    "login_failures",
    metadata,
    _text("username", primary_key=True),
    Column("count", Integer, nullable=False),
    _when("locked_until"),
    Column("pending", Integer, nullable=False, server_default="0"),
    _when("pending_since"),
)
sessions = Table(
    "sessions",
    metadata,
    _text("token_hash", primary_key=True),
    _text("username", nullable=False),
    _text("role", nullable=False),
    Column("must_change", Integer, nullable=False),
    _when("created_at", nullable=False),
    _when("last_seen", nullable=False),
    Index("sessions_user", "username"),
)
captchas = Table(
    "captchas",
    metadata,
    _text("captcha_id", primary_key=True),
    _text("answer", nullable=False),
    _when("expires_at", nullable=False),
    Column("seq", Integer, nullable=False),
)
resets = Table(
    "resets",
    metadata,
    _text("reset_id", primary_key=True),
    _text("username", nullable=False),
    _when("created_at", nullable=False),
    _when("expires_at", nullable=False),
    _text("channels", nullable=False),
    _text("code_digest"),
    _when("code_expires_at"),
    _when("last_sent_at"),
    Column("wrong_codes", Integer, nullable=False, server_default="0"),
    _text("state", nullable=False, server_default="active"),
)
reset_mismatches = Table(
    "reset_mismatches", metadata, _text("username", nullable=False), _when("at", nullable=False)
)
reset_sends = Table(  # every code sent, for the cap per username and hour across resets
    "reset_sends",
    metadata,
    _text("username", nullable=False),
    _when("at", nullable=False),
    Index("reset_sends_user", "username", "at"),
)
fee_items = Table(
    "fee_items",
    metadata,
    _text("id", primary_key=True),
    _text("username", nullable=False),
    _text("tag", nullable=False),
    Column("tag_rank", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    _text("name", nullable=False),
    _text("kind", nullable=False),
    Column("amount_due", BigInteger, nullable=False),
    Column("amount_paid", BigInteger, nullable=False, server_default="0"),
    _text("paid_order_no"),
    Column("refunded", BigInteger, nullable=False, server_default="0"),  # given back
    CheckConstraint("amount_due >= 0"),
    CheckConstraint("amount_paid >= 0"),
    Index("fee_items_user", "username"),
)
orders = Table(
    "orders",
    metadata,
    _text("order_no", primary_key=True),
    _text("username", nullable=False),
    Column("seq", Integer, nullable=False),  # the student's orders in the order made
    _text("status", nullable=False),
    _text("receipt_type", nullable=False),
    Column("total", BigInteger, nullable=False),
    _text("payee", nullable=False),
    _when("created_at", nullable=False),
    _when("expires_at", nullable=False),
    _text("pay_channel"),
    _text("pay_trade_no"),
    _text("qr_url"),
    _when("pay_issued_at"),
    _when("pay_expires_at"),
    _when("paid_at"),
    _text("channel"),
    _text("transaction_id", unique=True),
    _text("receipt_no", unique=True),
    _text("check_code"),
    _text("close_reason"),
    _when("closed_at"),
    _text("cashier"),  # a counter payment's staff member
    _text("reference"),  # a counter payment's POS slip number or cash note
    Column("refunded", BigInteger, nullable=False, server_default="0"),  # items refunds
    Index("orders_user", "username", "created_at"),
    Index("orders_cashier", "cashier", "paid_at"),
    UniqueConstraint("username", "seq"),
    Index("orders_status", "status", "expires_at"),
)
order_items = Table(
    "order_items",
    metadata,
    _text("order_no", nullable=False),
    Column("position", Integer, nullable=False),  # the items in the order chosen
    _text("item_id", nullable=False),
    _text("name", nullable=False),
    Column("amount", BigInteger, nullable=False),
    PrimaryKeyConstraint("order_no", "item_id"),
)
item_locks = Table(  # an item is in at most one unfinished order: the primary key is the lock
    "item_locks", metadata, _text("item_id", primary_key=True), _text("order_no", nullable=False)
)
order_trades = Table(
    "order_trades",
    metadata,
    _text("trade_no", primary_key=True),
    _text("order_no", nullable=False),
    _text("channel", nullable=False),
    _when("created_at", nullable=False),
    Index("order_trades_order", "order_no"),
)
idempotency = Table(
    "idempotency",
    metadata,
    _text("username", nullable=False),
    _text("key", nullable=False),
    _text("body", nullable=False),
    _text("order_no", nullable=False),
    PrimaryKeyConstraint("username", "key"),
)
discrepancies = Table(
    "discrepancies",
    metadata,
    Column("id", Integer, primary_key=True),
    _when("at", nullable=False),
    _text("order_no", nullable=False),
    _text("kind", nullable=False),
    _text("detail", nullable=False),
    _text("trade_no"),  # a trade that took money the order did not keep, and how much
    Column("amount", BigInteger),
    Index("discrepancies_trade", "trade_no"),
)
refunds = Table(
    "refunds",
    metadata,
    _text("refund_no", primary_key=True),
    _text("kind", nullable=False),  # items | trade
    _text("order_no", nullable=False),
    _text("trade_no"),
    Column("amount", BigInteger, nullable=False),
    _text("channel", nullable=False),
    _text("reason", nullable=False),
    _text("status", nullable=False),
    _text("requested_by", nullable=False),
    _when("requested_at", nullable=False),
    _text("decided_by"),
    _when("decided_at"),
    _when("settled_at"),
    CheckConstraint("amount > 0"),
    Index("refunds_order", "order_no"),
    Index("refunds_status", "status", "requested_at"),
)
refund_items = Table(
    "refund_items",
    metadata,
    _text("refund_no", nullable=False),
    _text("item_id", nullable=False),
    Column("amount", BigInteger, nullable=False),
    PrimaryKeyConstraint("refund_no", "item_id"),
)
refund_claims = Table(  # "item:ID" / "trade:NO" in one live refund at most: the key is the lock
    "refund_claims",
    metadata,
    _text("claim", primary_key=True),
    _text("refund_no", nullable=False),
)
staff_requests = Table(  # staff members' Idempotency-Keys: counter payments and refunds
    "staff_requests",
    metadata,
    _text("staff", nullable=False),
    _text("key", nullable=False),
    _text("body", nullable=False),
    _text("result", nullable=False),
    PrimaryKeyConstraint("staff", "key"),
)
receipt_resends = Table(
    "receipt_resends",
    metadata,
    _text("order_no", nullable=False),
    _when("at", nullable=False),
    Index("receipt_resends_order", "order_no", "at"),
)
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    _text("channel", nullable=False),
    _text("to_addr", nullable=False),
    _text("body", nullable=False),
    _when("sent_at", nullable=False),
)
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True),
    _when("at", nullable=False),
    _text("actor", nullable=False),
    _text("action", nullable=False),
    _text("target", nullable=False),
    _text("detail", nullable=False),
)
# the payment-gateway sandbox: an outside party, kept in tables of its own
gw_trades = Table(
    "gw_trades",
    metadata,
    _text("trade_no", primary_key=True),
    _text("pay_token", unique=True, nullable=False),
    _text("order_no", nullable=False),
    _text("channel", nullable=False),
    Column("amount", BigInteger, nullable=False),
    _text("payee", nullable=False),
    _text("items", nullable=False),
    _text("state", nullable=False),
    _when("created_at", nullable=False),
    _when("expires_at", nullable=False),
    _when("settles_at"),
    _text("notify_mode"),
    _when("paid_at"),
    _text("transaction_id", unique=True),
)
gw_refunds = Table(
    "gw_refunds",
    metadata,
    _text("refund_no", primary_key=True),
    _text("trade_no", nullable=False),
    Column("amount", BigInteger, nullable=False),
    _text("state", nullable=False),
    _text("reason", nullable=False),
    _when("created_at", nullable=False),
    Index("gw_refunds_trade", "trade_no"),
)
"""The sandbox gateway's refunds: one answer per refund number, kept."""
gw_notifies = Table(
    "gw_notifies",
    metadata,
    Column("id", Integer, primary_key=True),
    _text("trade_no", nullable=False),
    _when("due_at", nullable=False),
    _text("state", nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Index("gw_notifies_due", "state", "due_at"),
)
