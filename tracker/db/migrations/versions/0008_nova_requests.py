"""Nova request ids: the instances they name, failures parked, a lock row per request.

Revision ID: 0008
Revises: 0007
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    options = _byte_for_byte(op.get_bind())
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


def _byte_for_byte(bind: sa.Connection) -> dict[str, Any]:
    """Names compare byte for byte on MariaDB/MySQL, as 0007 made the other tables."""
    if bind.dialect.name != "mysql":
        return {}
    collation = "utf8mb4_nopad_bin" if getattr(bind.dialect, "is_mariadb", False) else "utf8mb4_0900_bin"
    return {"mysql_charset": "utf8mb4", "mysql_collate": collation}
