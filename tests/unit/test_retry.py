import sqlite3
import threading
import time

import pytest
import sqlalchemy.exc
import tenacity

from tests.conftest import make_conf
from tracker import retry
from tracker.errors import ConcurrentUpdate


class _PgError(Exception):
    def __init__(self, pgcode):
        super().__init__(pgcode)
        self.pgcode = pgcode


def _dbapi(orig, invalidated=False):
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "error",
    [
        ConcurrentUpdate("generation moved"),
        _dbapi(_PgError("40P01")),  # deadlock_detected
        _dbapi(_PgError("40001")),  # serialization_failure
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
        sqlalchemy.exc.IntegrityError("INSERT", {}, _PgError("23505")),
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
    engine = sqlalchemy.create_engine("postgresql+psycopg2://postgres@127.0.0.1:1/none")
    with pytest.raises(sqlalchemy.exc.OperationalError) as caught:
        engine.connect()
    assert retry.is_transient_db_error(caught.value)


@pytest.mark.parametrize("pgcode", ["57P03", "53300", "08006", "40P01"])
def test_postgresql_restart_and_overload_codes_are_transient(pgcode):
    assert retry.is_transient_db_error(_dbapi(_PgError(pgcode)))


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


def test_postgresql_read_only_after_failover_is_transient():
    assert retry.is_transient_db_error(_dbapi(_PgError("25006")))
