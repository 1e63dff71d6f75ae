"""Database faults that are not the message's fault, told apart at the database edge
(as oslo.db's exc_filters do), and the health line they make.

Only what an event carries can be its fault: a value the database refuses
(``retry.is_refused_data``), found by splitting the batch. Every other database
error says nothing about the event: a transient fault (deadlock, lost
connection) passes by itself; a statement timeout under a maintenance lock,
a cancelled query or a full disk passes once someone acts; a missing table, a
revoked grant or a schema of another version fails every event the same way
until an operator fixes the database. In every case the lane waits, retrying,
its messages stay unacknowledged, the health check names the reason, and
nothing is dead-lettered. The kinds below only choose the words.
"""

import re
import threading
import time

import sqlalchemy.exc

# The database works, but refuses what we ask until an operator fixes it.
ENVIRONMENT = "environment"
# We cannot reach the database: an outage, a network partition, a failover.
UNREACHABLE = "unreachable"
# Anything else (a statement timeout, a cancelled query, a deadlock): retried too.
FAILING = "failing"

# PostgreSQL SQLSTATEs: undefined table, column, function, object or schema (a
# schema of another version, or none); insufficient privilege (a revoked
# grant); the database itself gone; authorization refused; disk full.
_PG_ENVIRONMENT = {"42P01", "42703", "42883", "42704", "3F000", "42501", "3D000", "28000", "28P01", "53100"}
# MySQL/MariaDB errnos: no such table, unknown column, table or column command
# denied, access denied to the database or for the user, unknown database,
# disk full, table full.
_MYSQL_ENVIRONMENT = {1146, 1054, 1142, 1143, 1044, 1045, 1227, 1049, 1021, 1114}
# SQLite says it in words.
_SQLITE_ENVIRONMENT = (
    "no such table",
    "no such column",
    "readonly database",
    "unable to open database",
    "disk i/o error",
    "database or disk is full",
)
# psycopg gives no SQLSTATE when the server refuses the connection itself: its
# FATAL message says why (3D000, 28000, 28P01, 42501 at login).
_PG_LOGIN_REFUSED = re.compile(
    r'FATAL:\s+(database "[^"]*" does not exist|role "[^"]*" does not exist|role "[^"]*" is not permitted '
    r"to log in|\w+ authentication failed for user|no pg_hba\.conf entry|permission denied for database)"
    r"|fe_sendauth: no password supplied"
)
# Connection exceptions (class 08), server shutting down or starting (57P01-03).
_PG_UNREACHABLE = {"57P01", "57P02", "57P03"}
# MySQL/MariaDB: cannot connect, server gone away, lost connection, shutdown, killed.
_MYSQL_UNREACHABLE = {1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031}


def is_environment_fault(error: BaseException) -> bool:
    """The database cannot do our work at all until an operator fixes it."""
    orig = _driver_error(error)
    if orig is None:
        return False
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str):
        return sqlstate in _PG_ENVIRONMENT
    if type(orig).__module__.startswith("psycopg"):
        return refused_login(error)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _MYSQL_ENVIRONMENT
    text = str(orig).lower()
    return type(orig).__module__.startswith("sqlite3") and any(words in text for words in _SQLITE_ENVIRONMENT)


def refused_login(error: BaseException) -> bool:
    """PostgreSQL refused to let us in (no such database or role, wrong password, pg_hba):
    psycopg 3 keeps no SQLSTATE for it, only the server's FATAL line."""
    orig = _driver_error(error)
    return orig is not None and bool(_PG_LOGIN_REFUSED.search(str(orig)))


def is_unreachable(error: BaseException) -> bool:
    """The database cannot be reached (refused, reset, gone away, shutting down)."""
    if isinstance(error, sqlalchemy.exc.DisconnectionError | sqlalchemy.exc.TimeoutError):
        return True
    if not isinstance(error, sqlalchemy.exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith("08") or sqlstate in _PG_UNREACHABLE
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _MYSQL_UNREACHABLE
    # psycopg gives no SQLSTATE when it cannot reach the server at all
    # ("connection to server … failed: Connection refused"): that is an outage.
    return (
        type(orig).__module__.startswith("psycopg")
        and isinstance(error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError)
        and not refused_login(error)
    )


def kind(error: BaseException) -> str:
    """:data:`ENVIRONMENT`, :data:`UNREACHABLE` or :data:`FAILING`: for the words only."""
    if is_environment_fault(error):
        return ENVIRONMENT
    if is_unreachable(error):
        return UNREACHABLE
    return FAILING


def _driver_error(error: BaseException) -> BaseException | None:
    if not isinstance(error, sqlalchemy.exc.DBAPIError):
        return None
    return error.orig


def summary(error: BaseException) -> str:
    """The driver's class and first line: what the server said."""
    orig = getattr(error, "orig", None) or error
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0] if lines else ''}"


# A deadlock retried once is no news: a lane retrying for longer than this is.
_FAILING_GRACE = 5.0


class EnvironmentFaults:
    """Which lanes are waiting on the database, since when, why: for the health check.

    ``where`` names the database (host:port, never the password).
    """

    def __init__(self, where: str = "") -> None:
        self._where = where
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[float, str, str]] = {}  # thread id -> (since, kind, reason)

    def note(self, error: BaseException) -> None:
        with self._lock:
            since = self._waiting.get(threading.get_ident(), (time.monotonic(), "", ""))[0]
            self._waiting[threading.get_ident()] = (since, kind(error), summary(error))

    def clear(self) -> None:
        with self._lock:
            self._waiting.pop(threading.get_ident(), None)

    def problem(self) -> str | None:
        """One line for the health check, or None while the database does our work."""
        now = time.monotonic()
        with self._lock:
            waiting = [
                entry
                for entry in self._waiting.values()
                if entry[1] == ENVIRONMENT or now - entry[0] > _FAILING_GRACE
            ]
        if not waiting:
            return None
        since, what, reason = min(waiting)
        lanes = f"for {now - since:.0f}s: {len(waiting)} lane(s) paused, their messages kept unacknowledged"
        where = f" {self._where}" if self._where else ""
        if what == ENVIRONMENT:
            return (
                f"the database refuses our work ({reason}) {lanes}; fix the database{where} "
                "(schema: tracker-manage db sync; grants; disk), then they resume"
            )
        if what == UNREACHABLE:
            return f"the database{where} is unreachable ({reason}) {lanes}; they resume once it answers"
        return f"the database{where} fails our work ({reason}) {lanes}; retrying (a lock held? a timeout?)"
