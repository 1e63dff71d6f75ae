import sqlite3
import threading
import time

import psycopg.errors
import pytest
import sqlalchemy.exc
import tenacity

from tests.conftest import ADMIN_URLS, make_conf, require
from tracker import retry
from tracker.db.engine import create_engine
from tracker.errors import ConcurrentUpdate


class _Psycopg2Error(Exception):
    """psycopg2 named the SQLSTATE ``pgcode``: URLs saying ``+psycopg2`` still work."""

    def __init__(self, pgcode):
        super().__init__(pgcode)
        self.pgcode = pgcode


def _dbapi(orig, invalidated=False):
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "error",
    [
        ConcurrentUpdate("generation moved"),
        _dbapi(psycopg.errors.DeadlockDetected("deadlock detected")),
        _dbapi(psycopg.errors.SerializationFailure("could not serialize access")),
        _dbapi(psycopg.errors.LockNotAvailable("could not obtain lock")),
        _dbapi(psycopg.errors.AdminShutdown("terminating connection")),
        _dbapi(psycopg.errors.TooManyConnections("sorry, too many clients")),
        _dbapi(psycopg.errors.ReadOnlySqlTransaction("read-only transaction")),
        _dbapi(psycopg.OperationalError("connection failed: Connection refused")),  # no SQLSTATE
        _dbapi(_Psycopg2Error("40P01")),
        _dbapi(Exception(1213, "Deadlock found")),  # MySQL ER_LOCK_DEADLOCK
        _dbapi(Exception(2013, "Lost connection")),
        _dbapi(sqlite3.OperationalError("database is locked")),
        _dbapi(Exception("server closed"), invalidated=True),
        sqlalchemy.exc.DisconnectionError("gone"),
    ],
)
def test_transient_faults_are_retried(error):
    assert retry.is_transient_db_error(error)


@pytest.mark.parametrize(
    "error",
    [
        sqlalchemy.exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key")),
        sqlalchemy.exc.DataError("INSERT", {}, psycopg.errors.StringDataRightTruncation("value too long")),
        # statement_timeout: the same statement times out again, so retrying would spin forever
        _dbapi(psycopg.errors.QueryCanceled("canceling statement due to statement timeout")),
        _dbapi(_Psycopg2Error("57014")),
        _dbapi(Exception(1054, "Unknown column")),
        ValueError("bug"),
    ],
)
def test_permanent_faults_are_not_retried(error):
    assert not retry.is_transient_db_error(error)


def test_backoff_is_jittered_exponential_and_capped():
    wait = retry.exponential_wait(0.5, 4.0)
    for attempt in range(1, 12):
        state = tenacity.RetryCallState(None, None, (), {})
        state.attempt_number = attempt
        assert 0 <= wait(state) <= min(4.0, 0.5 * 2**attempt)


def test_db_retrying_retries_transient_then_succeeds():
    conf = make_conf()
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConcurrentUpdate("race")
        return "done"

    assert retry.db_retrying(conf)(flaky) == "done"
    assert len(calls) == 3


def test_db_retrying_gives_up_when_stopping():
    stopping = threading.Event()
    stopping.set()

    def always():
        raise ConcurrentUpdate("race")

    with pytest.raises(ConcurrentUpdate):
        retry.db_retrying(make_conf(), stopping)(always)


def test_reconnect_retrying_retries_broker_errors_until_success():
    conf = make_conf(worker={"reconnect_initial_backoff": 0.001, "reconnect_max_backoff": 0.1})
    attempts = []

    def connect():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionRefusedError("broker down")
        return "connected"

    assert retry.reconnect_retrying(conf, threading.Event(), OSError, "test")(connect) == "connected"
    assert len(attempts) == 3


def test_reconnect_retrying_gives_up_once_stopping():
    stopping = threading.Event()
    stopping.set()

    def connect():
        raise ConnectionRefusedError("broker down")

    with pytest.raises(ConnectionRefusedError):
        retry.reconnect_retrying(make_conf(), stopping, OSError, "test")(connect)


def test_a_postgresql_server_that_cannot_be_reached_is_an_outage_not_poison():
    engine = sqlalchemy.create_engine("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(sqlalchemy.exc.OperationalError) as caught:
        engine.connect()
    assert retry.is_transient_db_error(caught.value)


@pytest.mark.parametrize("sqlstate", ["57P03", "53300", "08006", "40P01"])
def test_postgresql_restart_and_overload_codes_are_transient(sqlstate):
    error = psycopg.errors.lookup(sqlstate)("server says so")
    assert error.sqlstate == sqlstate
    assert retry.is_transient_db_error(_dbapi(error))


def test_a_plain_postgresql_url_uses_psycopg_3():
    engine = create_engine(make_conf("postgresql://postgres@127.0.0.1:1/none"))
    assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
    engine.dispose()


def test_backoff_ends_as_soon_as_the_worker_stops():
    stopping = threading.Event()
    conf = make_conf(worker={"db_retry_initial_backoff": 30.0, "db_retry_max_backoff": 60.0})
    threading.Timer(0.2, stopping.set).start()
    started = time.monotonic()
    with pytest.raises(ConcurrentUpdate):
        retry.db_retrying(conf, stopping)(_always_races)
    assert time.monotonic() - started < 5


def _always_races():
    raise ConcurrentUpdate("race")


@pytest.mark.parametrize("code", [1047, 1290, 1792, 1836])
def test_mysql_failover_errors_are_transient(code):
    assert retry.is_transient_db_error(_dbapi(Exception(code, "failover")))


@pytest.mark.functional
def test_a_real_statement_timeout_is_not_retried():
    require("postgresql")
    engine = sqlalchemy.create_engine(ADMIN_URLS["postgresql"])
    with pytest.raises(sqlalchemy.exc.OperationalError) as caught, engine.connect() as connection:
        connection.exec_driver_sql("SET statement_timeout = 10")
        connection.exec_driver_sql("SELECT pg_sleep(1)")
    engine.dispose()
    assert caught.value.orig.sqlstate == "57014"
    assert not retry.is_transient_db_error(caught.value)
