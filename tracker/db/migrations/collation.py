"""Names compare byte for byte on MariaDB/MySQL: the collation migration 0007 gave every
table, and the table options that give it to a table created later."""

from typing import Any

import sqlalchemy as sa


def binary(bind: sa.Connection) -> str:
    return "utf8mb4_nopad_bin" if getattr(bind.dialect, "is_mariadb", False) else "utf8mb4_0900_bin"


def table_options(bind: sa.Connection) -> dict[str, Any]:
    if bind.dialect.name != "mysql":
        return {}
    return {"mysql_charset": "utf8mb4", "mysql_collate": binary(bind)}
