"""The money after payment (api-money.md): counter payments record their cashier and
reference, refunds and what they claim, refunded amounts on orders and fee items,
discrepancies that name the trade and amount to give back, staff idempotency keys, and
receipt resends for their cap.

Discrepancies kept before this version have no trade or amount: they stay listed but
are not open (nothing known to give back) until a new one names its trade.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _fen(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def upgrade() -> None:
    with op.batch_alter_table("orders", recreate="never") as orders:
        orders.add_column(sa.Column("cashier", sa.Text))
        orders.add_column(sa.Column("reference", sa.Text))
        orders.add_column(_fen("refunded"))
    with op.batch_alter_table("fee_items", recreate="never") as fee_items:
        fee_items.add_column(_fen("refunded"))
    with op.batch_alter_table("discrepancies", recreate="never") as discrepancies:
        discrepancies.add_column(sa.Column("trade_no", sa.Text))
        discrepancies.add_column(sa.Column("amount", sa.BigInteger))
    op.create_index("discrepancies_trade", "discrepancies", ["trade_no"])
    op.create_index("orders_cashier", "orders", ["cashier", "paid_at"])
    op.create_table(
        "refunds",
        sa.Column("refund_no", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("order_no", sa.Text, nullable=False),
        sa.Column("trade_no", sa.Text),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("requested_by", sa.Text, nullable=False),
        sa.Column("requested_at", sa.Double, nullable=False),
        sa.Column("decided_by", sa.Text),
        sa.Column("decided_at", sa.Double),
        sa.Column("settled_at", sa.Double),
        sa.CheckConstraint("amount > 0"),
    )
    op.create_index("refunds_order", "refunds", ["order_no"])
    op.create_index("refunds_status", "refunds", ["status", "requested_at"])
    op.create_table(
        "refund_items",
        sa.Column("refund_no", sa.Text, nullable=False),
        sa.Column("item_id", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("refund_no", "item_id"),
    )
    op.create_table(
        "refund_claims",
        sa.Column("claim", sa.Text, primary_key=True),
        sa.Column("refund_no", sa.Text, nullable=False),
    )
    op.create_table(
        "staff_requests",
        sa.Column("staff", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("staff", "key"),
    )
    op.create_table(
        "receipt_resends",
        sa.Column("order_no", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
    )
    op.create_index("receipt_resends_order", "receipt_resends", ["order_no", "at"])


def downgrade() -> None:
    for table in ("receipt_resends", "staff_requests", "refund_claims", "refund_items", "refunds"):
        op.drop_table(table)
    op.drop_index("orders_cashier", "orders")
    op.drop_index("discrepancies_trade", "discrepancies")
    with op.batch_alter_table("discrepancies", recreate="never") as discrepancies:
        discrepancies.drop_column("amount")
        discrepancies.drop_column("trade_no")
    with op.batch_alter_table("fee_items", recreate="never") as fee_items:
        fee_items.drop_column("refunded")
    with op.batch_alter_table("orders", recreate="never") as orders:
        for column in ("refunded", "reference", "cashier"):
            orders.drop_column(column)
