"""A paid order's receipt carries a check code (校验码), drawn once at payment; orders
paid before this version get theirs now, and keep it.

Revision ID: 0004
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.add_column(sa.Column("check_code", sa.Text))
    table = sa.table("orders", sa.column("order_no"), sa.column("status"), sa.column("check_code"))
    bind = op.get_bind()
    paid = list(bind.execute(sa.select(table.c.order_no).where(table.c.status == "paid")).scalars())
    for order_no in paid:
        code = f"{secrets.randbelow(10**6):06d}"
        bind.execute(table.update().where(table.c.order_no == order_no).values(check_code=code))


def downgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.drop_column("check_code")
