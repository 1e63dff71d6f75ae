"""Named watermarks; the first: before when tombstones were purged.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watermarks",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(26), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_watermarks"),
    )
