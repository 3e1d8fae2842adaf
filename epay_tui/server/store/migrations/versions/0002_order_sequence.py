"""Orders and their items keep the order they were made in explicitly (``orders.seq``
per student, ``order_items.position``), not by SQLite's hidden ``rowid``, which
PostgreSQL does not have.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.add_column(sa.Column("seq", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("order_items") as items:
        items.add_column(sa.Column("position", sa.Integer, nullable=False, server_default="0"))
    # the order the rows were written in: SQLite's rowid (a database server's schema at
    # 0001 could only come from this release's first days: creation time, then number)
    written = "rowid" if op.get_bind().dialect.name == "sqlite" else "order_no"
    op.execute(
        "UPDATE orders SET seq = ranked.n FROM (SELECT order_no, ROW_NUMBER() OVER"  # noqa: S608
        f" (PARTITION BY username ORDER BY created_at, {written}) AS n FROM orders) AS ranked"
        " WHERE ranked.order_no = orders.order_no"
    )
    op.execute(
        "UPDATE order_items SET position = ranked.n FROM (SELECT order_no, item_id,"  # noqa: S608
        " ROW_NUMBER() OVER (PARTITION BY order_no ORDER BY"
        f" {'rowid' if written == 'rowid' else 'item_id'}) AS n FROM order_items) AS ranked"
        " WHERE ranked.order_no = order_items.order_no AND ranked.item_id = order_items.item_id"
    )
    with op.batch_alter_table("orders") as orders:
        orders.create_unique_constraint("uq_orders_username_seq", ["username", "seq"])


def downgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.drop_constraint("uq_orders_username_seq", type_="unique")
        orders.drop_column("seq")
    with op.batch_alter_table("order_items") as items:
        items.drop_column("position")
