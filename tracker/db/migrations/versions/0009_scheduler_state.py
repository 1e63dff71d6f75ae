"""What schedulers need: node uuids, service state, aggregates, quotas, alerts.

Revision ID: 0009
Revises: 0008
"""

import uuid

import sqlalchemy as sa
from alembic import op

from tracker.db.migrations import collation

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Notifications written before the upgrade carry the old, unversioned payload,
    # which a 1.x subscriber rejects; the periodic announce (or `tracker-manage
    # announce`) publishes every node's current capacity in the new form instead.
    op.execute(sa.delete(sa.table("capacity_outbox")))
    with op.batch_alter_table("compute_nodes") as batch:
        batch.add_column(sa.Column("uuid", sa.String(36), nullable=True))
    nodes = sa.table("compute_nodes", sa.column("id", sa.Integer), sa.column("uuid", sa.String))
    bind = op.get_bind()
    for (node_id,) in bind.execute(sa.select(nodes.c.id)).all():
        bind.execute(sa.update(nodes).where(nodes.c.id == node_id).values(uuid=str(uuid.uuid4())))
    with op.batch_alter_table("compute_nodes") as batch:
        batch.alter_column("uuid", existing_type=sa.String(36), nullable=False)
        batch.create_unique_constraint("uq_compute_nodes_uuid", ["uuid"])
    # names compare byte for byte on MariaDB/MySQL too (see 0007)
    binary = collation.table_options(bind)
    op.create_table(
        "host_services",
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(255), nullable=True),
        sa.Column("forced_down", sa.Boolean(), nullable=False),
        sa.Column("availability_zone", sa.String(255), nullable=True),
        sa.Column("noted_at", sa.String(26), nullable=False),
        sa.PrimaryKeyConstraint("host", name="pk_host_services"),
        **binary,
    )
    op.create_table(
        "aggregates",
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("availability_zone", sa.String(255), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("noted_at", sa.String(26), nullable=False),
        sa.PrimaryKeyConstraint("uuid", name="pk_aggregates"),
        **binary,
    )
    op.create_table(
        "aggregate_hosts",
        sa.Column("aggregate_uuid", sa.String(36), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["aggregate_uuid"],
            ["aggregates.uuid"],
            name="fk_aggregate_hosts_aggregate_uuid_aggregates",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("aggregate_uuid", "host", name="pk_aggregate_hosts"),
        **binary,
    )
    op.create_index("ix_aggregate_hosts_host", "aggregate_hosts", ["host"])
    op.create_table(
        "project_quotas",
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("resource", sa.String(32), nullable=False),
        sa.Column("limit", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "resource", name="pk_project_quotas"),
        **binary,
    )
    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_outbox"),
        **binary,
    )
