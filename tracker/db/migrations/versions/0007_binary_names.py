"""Names compare byte for byte on MariaDB/MySQL, as they do on PostgreSQL and SQLite.

Their default collations take ``CMP07``, ``cmp07 `` and ``cmp07`` for the same
host: one forged event could then stand for another host's node or project.
A binary collation without trailing-space padding makes every name itself.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

from tracker.db.migrations import collation

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TABLES = (
    "compute_nodes",
    "instances",
    "instance_events",
    "allocations",
    "project_usage",
    "flavors",
    "watermarks",
    "capacity_outbox",
)

_UUID_KEYS = (
    ("fk_allocations_instance_uuid_instances", "allocations"),
    ("fk_instance_events_instance_uuid_instances", "instance_events"),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "mysql":
        return
    binary = collation.binary(bind)
    # MariaDB changes no column a foreign key uses, even with the checks off:
    # the keys on instance uuids go, the columns change, the keys come back.
    for name, table in _UUID_KEYS:
        op.drop_constraint(name, table, type_="foreignkey")
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} CONVERT TO CHARACTER SET utf8mb4 COLLATE {binary}")
    for name, table in _UUID_KEYS:
        op.create_foreign_key(name, table, "instances", ["instance_uuid"], ["uuid"], ondelete="CASCADE")
