"""A database of its own for one benchmark run, dropped afterwards."""

import contextlib
import tempfile
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def scratch_database(kind: str) -> Iterator[str]:
    """URL of an empty database: a SQLite file, or a PostgreSQL database on the local server."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.sqlite"
        return
    name = f"tracker_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield sa.make_url(POSTGRES_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()
