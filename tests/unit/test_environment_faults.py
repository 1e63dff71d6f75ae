"""The third kind of database fault, told apart at the database edge."""

import sqlite3
import threading
import time

import psycopg.errors
import pytest
import sqlalchemy.exc

from tests import factories
from tracker import retry
from tracker.bus.consumer import Work, Worker
from tracker.bus.delivery import Delivery, Session
from tracker.bus.outcomes import Unapplied
from tracker.db import faults as db_faults
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.apply import APPLIED
from tracker.db.engine import Database
from tracker.db.faults import EnvironmentFaults, is_environment_fault


@pytest.fixture
def store(conf):
    """A worker's store: ``stopping`` can end its waits, so it waits out database faults."""
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    yield Store(db, conf, threading.Event())
    db.dispose()


def _dbapi(orig):
    return sqlalchemy.exc.ProgrammingError("UPDATE compute_nodes", {}, orig)


@pytest.mark.parametrize(
    "orig",
    [
        psycopg.errors.UndefinedTable('relation "instances" does not exist'),
        psycopg.errors.UndefinedColumn('column "generation" does not exist'),
        psycopg.errors.InsufficientPrivilege("permission denied for table compute_nodes"),
        # a refused login: psycopg 3 raises a plain OperationalError without SQLSTATE
        psycopg.OperationalError(
            'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
            'FATAL:  database "tracker" does not exist'
        ),
        psycopg.OperationalError(
            'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
            'FATAL:  password authentication failed for user "tracker"'
        ),
        psycopg.OperationalError(
            'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
            'FATAL:  role "tracker" does not exist'
        ),
        psycopg.OperationalError(
            'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
            'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "tracker", database "tracker"'
        ),
        Exception(1146, "Table 'tracker.instances' doesn't exist"),
        Exception(1142, "UPDATE command denied to user 'tracker'"),
        sqlite3.OperationalError("no such table: instances"),
        sqlite3.OperationalError("attempt to write a readonly database"),
    ],
)
def test_a_broken_environment_is_retried_but_not_transient(orig):
    error = _dbapi(orig)
    assert is_environment_fault(error)
    assert retry.is_retried_db_error(error)
    assert not retry.is_transient_db_error(error)


@pytest.mark.parametrize(
    "orig",
    [
        psycopg.errors.StringDataRightTruncation("value too long for type character varying(255)"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        Exception(1406, "Data too long for column 'host'"),
        sqlite3.IntegrityError("UNIQUE constraint failed"),
    ],
)
def test_poison_and_transient_faults_are_not_the_environment(orig):
    assert not is_environment_fault(_dbapi(orig))


def _operational(orig):
    return sqlalchemy.exc.OperationalError("UPDATE compute_nodes", {}, orig)


# Neither on the transient nor on the environment lists: still not the message's fault.
_NOT_THE_MESSAGE = [
    psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),  # also pg_cancel_backend
    psycopg.errors.DiskFull("could not extend file: No space left on device"),
    psycopg.errors.InternalError_("something the server did not expect"),
    Exception(3024, "Query execution was interrupted, maximum statement execution time exceeded"),  # MySQL
    Exception(1969, "Query execution was interrupted (max_statement_time exceeded)"),  # MariaDB
    Exception(1317, "Query execution was interrupted"),  # KILL QUERY
    Exception(1021, "Disk full (/tmp/#sql_1.MAI); waiting for someone to free some space..."),
    Exception(1114, "The table 'instances' is full"),
    sqlite3.OperationalError("disk I/O error"),
    sqlite3.OperationalError("database or disk is full"),
]


@pytest.mark.parametrize("orig", _NOT_THE_MESSAGE)
def test_only_refused_data_is_the_messages_fault(orig):
    error = _operational(orig)
    assert retry.is_retried_db_error(error)
    assert not retry.is_refused_data(error)


@pytest.mark.parametrize(
    "error",
    [
        sqlalchemy.exc.DataError("INSERT", {}, psycopg.errors.StringDataRightTruncation("value too long")),
        sqlalchemy.exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("NOT NULL constraint failed")),
        ValueError("a bug in a fold"),
    ],
)
def test_refused_data_and_bugs_are_not_waited_for(error):
    assert not retry.is_retried_db_error(error)


def test_the_store_waits_out_a_fault_on_no_list_and_health_names_it(store, monkeypatch):
    """A statement cancelled (a DBA's lock and our statement_timeout) twice, then through:
    the batch applies, nothing is poison, and the health line said why meanwhile."""
    real = store._apply_once
    seen = []

    def cancelled_twice(events):
        if len(seen) < 2:
            seen.append(store.environment.problem())
            raise _operational(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"))
        seen.append(store.environment.problem())
        return real(events)

    monkeypatch.setattr(store, "_apply_once", cancelled_twice)
    monkeypatch.setattr(db_faults, "_FAILING_GRACE", 0.0)
    events = [factories.event("create.end", 1, instance=f"inst-{i}") for i in (1, 2)]
    verdicts = store.apply_batch(events)
    assert [v.status for v in verdicts] == [APPLIED, APPLIED]
    assert seen[0] is None
    assert seen[2] is not None and "the database sqlite " in seen[2]
    assert "fails our work (QueryCanceled: canceling statement due to statement timeout)" in seen[2]
    assert store.environment.problem() is None


def test_an_outage_is_named_unreachable_with_the_host_and_port():
    faults = EnvironmentFaults("postgresql db.example.org:5432/tracker")
    faults.note(_operational(psycopg.OperationalError("connection failed: Connection refused")))
    assert faults.problem() is None  # within the grace: one retry is no news
    faults._waiting = {k: (since - 60, *rest) for k, (since, *rest) in faults._waiting.items()}
    problem = faults.problem()
    assert problem is not None
    assert problem.startswith("the database postgresql db.example.org:5432/tracker is unreachable (")


def test_the_health_line_names_the_reason_until_every_lane_is_through():
    faults = EnvironmentFaults()
    assert faults.problem() is None
    faults.note(_dbapi(psycopg.errors.UndefinedTable('relation "instances" does not exist\nLINE 1: …')))
    problem = faults.problem()
    assert problem is not None
    assert 'the database refuses our work (UndefinedTable: relation "instances" does not exist)' in problem
    assert "1 lane(s) paused" in problem and "\n" not in problem
    faults.clear()
    assert faults.problem() is None


def test_a_lane_gives_up_a_batch_once_no_delivery_of_it_is_live(conf, store, monkeypatch):
    """RabbitMQ's consumer_timeout closes the channel during a long outage and redelivers:
    the lane must leave the old deliveries (they can never be acked) for the new copies,
    not retry them until the outage ends while the redelivered ones pile up behind."""

    def cancelled(events):
        raise _operational(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"))

    monkeypatch.setattr(store, "_apply_once", cancelled)
    stopping = threading.Event()
    worker = Worker(conf, store, stopping)
    session = Session(acks=None)
    works = [
        Work(Delivery(session, None), factories.event("create.end", 1, instance=f"i-{i}")) for i in (1, 2)
    ]
    results = []
    lane = threading.Thread(target=lambda: results.extend(worker._apply(works)), daemon=True)
    lane.start()
    time.sleep(0.3)
    assert lane.is_alive()  # retrying while the session lives
    session.close()  # the channel is gone
    lane.join(5)
    gave_up = not lane.is_alive()
    stopping.set()  # the old code retries until stopping: let its thread end
    lane.join(5)
    assert gave_up, "still retrying deliveries that can never be acknowledged"
    assert [type(result) for result in results] == [Unapplied, Unapplied]
    assert results and all(not result.delivery.live for result in results)
