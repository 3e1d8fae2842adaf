"""The schema of the first versioned release. A new database is created at the newest
version directly; this step runs only on a database from before versions existed, and
adds the columns earlier releases lacked.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ADDED_LATER = {
    "gw_notifies": [sa.Column("attempts", sa.Integer, nullable=False, server_default="0")],
    "login_failures": [
        sa.Column("pending", sa.Integer, nullable=False, server_default="0"),
        sa.Column("pending_since", sa.Double),
    ],
}


def upgrade() -> None:
    have = sa.inspect(op.get_bind())
    for table, columns in ADDED_LATER.items():
        present = {column["name"] for column in have.get_columns(table)}
        for column in columns:
            if column.name not in present:
                op.add_column(table, column)


def downgrade() -> None:
    raise NotImplementedError("a schema is never taken back to before versions")
