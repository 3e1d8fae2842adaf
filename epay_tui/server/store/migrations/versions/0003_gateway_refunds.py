"""The sandbox gateway keeps its refunds (``gw_refunds``): one answer per refund number.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gw_refunds",
        sa.Column("refund_no", sa.Text, primary_key=True),
        sa.Column("trade_no", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_index("gw_refunds_trade", "gw_refunds", ["trade_no"])


def downgrade() -> None:
    op.drop_table("gw_refunds")
