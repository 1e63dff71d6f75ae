"""Keep each instance's current derived state, so in-order events skip re-derivation.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        # '' means "not derived yet": the next event re-derives from base_state and the events.
        batch.add_column(sa.Column("state", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("event_count", sa.Integer(), nullable=False, server_default="0"))
    op.create_index(
        "ix_instance_events_instance_uuid_dedupe_key", "instance_events", ["instance_uuid", "dedupe_key"]
    )
