"""``column IN (values)`` whose statement text does not depend on the number of values."""

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# The array's element type, by the column's Python type: without a length, as IN
# casts its parameters (a VARCHAR(36)[] cast would cut a longer value to a match).
_ELEMENTS: dict[type, sa.types.TypeEngine[Any]] = {str: sa.String(), int: sa.BigInteger()}


def any_of(
    connection: sa.Connection, column: sa.ColumnElement[Any], values: Collection[Any]
) -> sa.ColumnElement[bool]:
    """``column = ANY(:array)`` on PostgreSQL, ``column IN (...)`` elsewhere.

    An IN list is rendered again, one parameter per value, on every execution,
    and psycopg parses each new text again; one array parameter keeps a single
    text, converted once and prepared by the server. Same rows either way.
    """
    if connection.dialect.name != "postgresql":
        return column.in_(values)
    array = postgresql.ARRAY(_ELEMENTS[column.type.python_type])
    return column == sa.any_(sa.bindparam(None, list(values), type_=array))
