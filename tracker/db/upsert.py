"""Multi-row inserts that create what is missing or add to what exists, per dialect.

Rows are written in the order given: callers sort them, so that the row locks
an insert takes come in the same order in every worker.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

Rows = Sequence[Mapping[str, Any]]


def insert_missing(connection: sa.Connection, table: sa.Table, rows: Rows) -> None:
    """``INSERT … ON CONFLICT DO NOTHING``: rows that exist already are left as they are.

    MariaDB says ``ON DUPLICATE KEY UPDATE pk = pk`` rather than ``INSERT
    IGNORE``, which would also turn a value the column refuses into a warning.
    """
    if not rows:
        return
    if _is_mysql(connection):
        key = table.primary_key.columns[0]
        connection.execute(mysql.insert(table).on_duplicate_key_update({key.name: key}), rows)
    else:
        connection.execute(_insert(connection, table).on_conflict_do_nothing(), rows)


def insert_adding(connection: sa.Connection, table: sa.Table, rows: Rows, columns: Sequence[str]) -> None:
    """Create each row, or add its ``columns`` to those of the row that exists."""
    if not rows:
        return
    if _is_mysql(connection):
        statement = mysql.insert(table)
        added = {name: table.c[name] + statement.inserted[name] for name in columns}
        connection.execute(statement.on_duplicate_key_update(added), rows)
        return
    upsert = _insert(connection, table)
    keys = list(table.primary_key.columns)
    added = {name: table.c[name] + upsert.excluded[name] for name in columns}
    connection.execute(upsert.on_conflict_do_update(index_elements=keys, set_=added), rows)


def _is_mysql(connection: sa.Connection) -> bool:
    return connection.dialect.name in ("mysql", "mariadb")


def _insert(connection: sa.Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
