"""The one module that owns the engine and declares transaction scope."""

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy import event, orm

from tracker.errors import ConfigError

# What to install for each backend's driver: the package extras of setup.cfg.
_EXTRAS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


def create_engine(conf: cfg.ConfigOpts) -> sa.Engine:
    url = with_driver(_url(conf.database.connection))
    try:
        return _create_engine(url, conf)
    except ModuleNotFoundError as error:
        extra = _EXTRAS.get(url.get_backend_name())
        hint = f": pip install 'tracker[{extra}]'" if extra else ""
        raise ConfigError(
            f"the database driver {error.name!r} for {url.drivername} is not installed{hint}"
        ) from error


def _url(connection: str | None) -> sa.URL:
    if not connection:
        raise ConfigError(
            "[database] connection is not set: name the database, e.g. "
            "sqlite:////var/lib/tracker/tracker.sqlite for a trial, "
            "postgresql://tracker:PASSWORD@HOST/tracker for production"
        )
    try:
        return sa.make_url(connection)
    except sa.exc.ArgumentError as error:
        raise ConfigError(f"[database] connection is not a database URL: {error}") from error


def describe(url: sa.URL) -> str:
    """Where the database is, for log lines and errors: never the password."""
    if url.get_backend_name() == "sqlite":
        return f"sqlite {url.database or ':memory:'}"
    return f"{url.get_backend_name()} {url.host or 'localhost'}:{url.port or 'default port'}/{url.database}"


def _create_engine(url: sa.URL, conf: cfg.ConfigOpts) -> sa.Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return sa.create_engine(
        url,
        pool_size=conf.database.max_pool_size,
        max_overflow=conf.database.max_overflow,
        pool_timeout=conf.database.pool_timeout,
        pool_recycle=conf.database.connection_recycle_time,
        pool_pre_ping=True,
        connect_args=_connect_args(url.get_backend_name()),
        # Locking reads (SELECT … FOR UPDATE) then plain reads of the rows just
        # locked: READ COMMITTED lets the plain reads see the previous holder's
        # commit on MariaDB too, whose default REPEATABLE READ would not.
        isolation_level="READ COMMITTED",
    )


# A URL without a driver means the driver of our extras, not SQLAlchemy's
# default (psycopg2, MySQLdb), which an operator following the README has not
# installed: ``postgresql://`` is psycopg 3, ``mysql://`` PyMySQL.
_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}


def with_driver(url: sa.URL) -> sa.URL:
    """The URL with the driver we ship when it names none (also for snapshot readers)."""
    return url.set(drivername=_DRIVERS[url.drivername]) if url.drivername in _DRIVERS else url


def _connect_args(backend: str) -> dict[str, Any]:
    """Fail fast on an unreachable server, and notice a half-open socket, so a lane
    never blocks forever on a dead database but retries instead. For PostgreSQL
    these are libpq parameters, which psycopg 3 passes through as psycopg2 did."""
    if backend == "postgresql":
        return {
            "connect_timeout": 10,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
    if backend in ("mysql", "mariadb"):
        return {"connect_timeout": 10}
    return {}


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    """SQLite serializes writers: take the write lock at BEGIN (no upgrade deadlocks)."""
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")
        if url.database not in (None, "", ":memory:"):
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """Engine plus session factory; ``transaction()`` and ``connection()`` are the only ways to write."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._sessions = orm.sessionmaker(bind=engine, expire_on_commit=False)

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> "Database":
        return cls(create_engine(conf))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def transaction(self) -> Iterator[orm.Session]:
        """One unit of work: commits on success, rolls back on any exception."""
        with self._sessions.begin() as session:
            yield session

    @contextlib.contextmanager
    def connection(self) -> Iterator[sa.Connection]:
        """One unit of work in SQLAlchemy Core, for the hot path: same rules as ``transaction()``."""
        with self.engine.begin() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
