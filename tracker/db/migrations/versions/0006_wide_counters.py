"""64-bit usage counters: sums of sizes Nova accepts (each up to 2**31 - 1) fit.

One allocation's disk alone (root + ephemeral + swap) can exceed a 32-bit
integer, and a node or project sums many allocations.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_WIDENED = {
    "compute_nodes": ("vcpus_used", "memory_mb_used", "local_gb_used", "running_vms"),
    "allocations": ("vcpus", "memory_mb", "local_gb"),
    "project_usage": ("vcpus", "memory_mb", "local_gb", "instances"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # INTEGER is 64-bit there already (see models.Counter)
    for table, columns in _WIDENED.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column, type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False
                )
