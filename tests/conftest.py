"""Fixtures shared by unit and functional tests.

Real services are required, not optional, in CI: a functional test whose
service is unreachable fails when ``CI=true`` and is skipped otherwise, as
dramatiq's ``check_rabbitmq`` does.
"""

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from tracker import conf as tracker_conf
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database

SERVICES = {
    "rabbitmq": ("127.0.0.1", 5672),
    "postgresql": ("127.0.0.1", 5432),
    "mariadb": ("127.0.0.1", 3306),
}
RABBIT_URL = "rabbit://guest:guest@127.0.0.1:5672/"
ADMIN_URLS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
}


def require(service: str) -> None:
    host, port = SERVICES[service]
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as error:
        message = f"{service} at {host}:{port} is unreachable: {error}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: real services are mandatory)")
        pytest.skip(message)


def make_conf(connection: str = "sqlite://", **overrides: dict[str, object]) -> cfg.ConfigOpts:
    """A fresh ConfigOpts (no global CONF); overrides given per group."""
    conf = tracker_conf.load([], default_config_files=[])
    conf.set_override("connection", connection, group="database")
    conf.set_override("db_retry_initial_backoff", 0.01, group="worker")
    conf.set_override("db_retry_max_backoff", 0.2, group="worker")
    for group, values in overrides.items():
        for name, value in values.items():
            conf.set_override(name, value, group=None if group == "DEFAULT" else group)
    return conf


@pytest.fixture
def conf(tmp_path: "os.PathLike[str]") -> cfg.ConfigOpts:
    return make_conf(f"sqlite:///{tmp_path}/tracker.sqlite")


@pytest.fixture
def store(conf: cfg.ConfigOpts) -> Iterator[Store]:
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    yield Store(db, conf)
    db.dispose()


def _scratch_database(backend: str) -> Iterator[str]:
    """A database of its own for one test, dropped afterwards."""
    require(backend)
    name = f"tracker_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(ADMIN_URLS[backend], isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield sa.make_url(ADMIN_URLS[backend]).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(
                f"DROP DATABASE {name} WITH (FORCE)" if backend == "postgresql" else f"DROP DATABASE {name}"
            )
        admin.dispose()


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    yield from _scratch_database("postgresql")


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    yield from _scratch_database("mariadb")


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _scratch_database(request.param)
