"""Nova request ids: the instances they name, failures parked, a lock row per request.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from tracker.db.migrations import collation

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    options = collation.table_options(op.get_bind())
    op.create_table(
        "instance_requests",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "instance_uuid", name="pk_instance_requests"),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name="fk_instance_requests_instance_uuid_instances",
            ondelete="CASCADE",
        ),
        **options,
    )
    op.create_table(
        "nova_requests",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("first_seen", sa.String(26), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_nova_requests"),
        **options,
    )
    op.create_table(
        "parked_failures",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.String(26), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_parked_failures"),
        sa.UniqueConstraint("message_id", name="uq_parked_failures_message_id"),
        **options,
    )
    op.create_index("ix_parked_failures_request_id", "parked_failures", ["request_id"])
