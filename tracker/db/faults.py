"""A third kind of database fault, told apart at the database edge (as oslo.db's
exc_filters do): the environment is broken.

A transient fault (deadlock, lost connection) passes by itself; a poison event
fails for what it carries. A missing table, a revoked grant or a schema of
another version is neither: every event fails the same way until an operator
fixes the database, and then every one of them applies. So the lane waits,
retrying, its messages stay unacknowledged, the health check names the
reason, and nothing is dead-lettered.
"""

import threading
import time

import sqlalchemy.exc

# PostgreSQL SQLSTATEs: undefined table, column, function, object or schema (a
# schema of another version, or none); insufficient privilege (a revoked
# grant); the database itself gone; authorization refused.
_PG_ENVIRONMENT = {"42P01", "42703", "42883", "42704", "3F000", "42501", "3D000", "28000", "28P01"}
# MySQL/MariaDB errnos: no such table, unknown column, table or column command
# denied, access denied to the database or for the user, unknown database.
_MYSQL_ENVIRONMENT = {1146, 1054, 1142, 1143, 1044, 1045, 1227, 1049}
# SQLite says it in words.
_SQLITE_ENVIRONMENT = ("no such table", "no such column", "readonly database", "unable to open database")


def is_environment_fault(error: BaseException) -> bool:
    """The database cannot do our work at all until an operator fixes it."""
    if not isinstance(error, sqlalchemy.exc.DBAPIError) or error.orig is None:
        return False
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate in _PG_ENVIRONMENT
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _MYSQL_ENVIRONMENT
    text = str(orig).lower()
    return type(orig).__module__.startswith("sqlite3") and any(words in text for words in _SQLITE_ENVIRONMENT)


def summary(error: BaseException) -> str:
    """The driver's class and first line: what the server said."""
    orig = getattr(error, "orig", None) or error
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0] if lines else ''}"


class EnvironmentFaults:
    """Which lanes are waiting on a broken database, since when and why: for the health check."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[float, str]] = {}  # thread id -> (since, reason)

    def note(self, error: BaseException) -> None:
        with self._lock:
            since = self._waiting.get(threading.get_ident(), (time.monotonic(), ""))[0]
            self._waiting[threading.get_ident()] = (since, summary(error))

    def clear(self) -> None:
        with self._lock:
            self._waiting.pop(threading.get_ident(), None)

    def problem(self) -> str | None:
        """One line for the health check, or None while the database does our work."""
        with self._lock:
            if not self._waiting:
                return None
            since, reason = min(self._waiting.values())
            count = len(self._waiting)
        return (
            f"the database refuses our work ({reason}) for {time.monotonic() - since:.0f}s: {count} lane(s) "
            "paused, their messages kept unacknowledged; fix the database (schema: tracker-manage db sync; "
            "grants), then they resume"
        )
