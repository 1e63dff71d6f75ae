"""The third kind of database fault, told apart at the database edge."""

import sqlite3

import psycopg.errors
import pytest
import sqlalchemy.exc

from tracker import retry
from tracker.db.faults import EnvironmentFaults, is_environment_fault


def _dbapi(orig):
    return sqlalchemy.exc.ProgrammingError("UPDATE compute_nodes", {}, orig)


@pytest.mark.parametrize(
    "orig",
    [
        psycopg.errors.UndefinedTable('relation "instances" does not exist'),
        psycopg.errors.UndefinedColumn('column "generation" does not exist'),
        psycopg.errors.InsufficientPrivilege("permission denied for table compute_nodes"),
        psycopg.errors.InvalidCatalogName('database "tracker" does not exist'),
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
