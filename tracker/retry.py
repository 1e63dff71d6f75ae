"""Retry policies built from configuration, kept apart from the I/O that uses them.

Which errors are transient is decided here too, so the database and bus edges
only say "retry this" and the policy stays unit-testable.
"""

import logging
import threading
from collections.abc import Callable

import sqlalchemy.exc
import tenacity
from oslo_config import cfg

from tracker.db.faults import EnvironmentFaults, is_environment_fault, is_unreachable, summary
from tracker.errors import ConcurrentUpdate

LOG = logging.getLogger(__name__)

# PostgreSQL SQLSTATE classes and codes worth another try: connection
# exceptions, transaction rollbacks (deadlock, serialization), insufficient
# resources (too many clients), lock_not_available, and the server going away.
_PG_TRANSIENT_CLASSES = ("08", "40", "53")
# 25006: read_only_sql_transaction, a demoted primary right after a failover.
_PG_TRANSIENT = {"25006", "55P03", "57P01", "57P02", "57P03"}
# MySQL/MariaDB: lock wait timeout, deadlock, too many connections, server
# shutdown, lost/refused connections, server gone away, connection killed;
# and failover: Galera node not ready (1047), read-only after a switchover
# (1290, 1792, 1836).
_MYSQL_TRANSIENT = {1040, 1047, 1053, 1205, 1213, 1290, 1792, 1836, 1927, 2002, 2003, 2006, 2013, 2055, 4031}


def is_transient_db_error(error: BaseException) -> bool:
    """Deadlocks, lock timeouts, lost connections, busy SQLite, lost CAS races."""
    if isinstance(error, ConcurrentUpdate | sqlalchemy.exc.DisconnectionError):
        return True
    if isinstance(error, sqlalchemy.exc.TimeoutError):
        return True
    if not isinstance(error, sqlalchemy.exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    return _driver_says_transient(error)


def is_refused_data(error: BaseException) -> bool:
    """The database refuses what a statement carries (a value too long or out of
    range, a violated constraint): the same data fails the same way again."""
    return isinstance(
        error, sqlalchemy.exc.DataError | sqlalchemy.exc.IntegrityError
    ) and not is_transient_db_error(error)


def _driver_says_transient(error: sqlalchemy.exc.DBAPIError) -> bool:
    orig = error.orig
    sqlstate = _sqlstate(orig)
    if sqlstate:
        # Anything else with a SQLSTATE, 57014 query_canceled (statement_timeout)
        # included, fails the same way next time: retrying it would spin forever.
        return sqlstate.startswith(_PG_TRANSIENT_CLASSES) or sqlstate in _PG_TRANSIENT
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _MYSQL_TRANSIENT
    if "database is locked" in str(orig).lower():
        return True  # SQLite: another writer holds the lock past the busy timeout
    # psycopg gives no SQLSTATE when it cannot reach the server at all
    # ("connection to server … failed: Connection refused"): that is an outage;
    # a login the server refused (no such database, wrong password) is not.
    return type(orig).__module__.startswith("psycopg") and is_unreachable(error)


def _sqlstate(orig: BaseException | None) -> str | None:
    """psycopg 3 names it ``sqlstate``; psycopg2 named it ``pgcode``."""
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def exponential_wait(initial: float, maximum: float) -> tenacity.wait.wait_base:
    """Exponential backoff with full jitter, so retrying workers do not stampede."""
    return tenacity.wait_random_exponential(multiplier=max(initial, 0.001), max=maximum)


def is_retried_db_error(error: BaseException) -> bool:
    """Not the event's fault: every database error but refused data (a value too
    long, a violated constraint), which only the event's own data causes. A
    transient fault, a broken environment, a statement timeout under someone
    else's lock, a full disk (:mod:`tracker.db.faults`): the event waits, it is
    never dead-lettered."""
    if is_transient_db_error(error):
        return True
    return isinstance(error, sqlalchemy.exc.DBAPIError) and not is_refused_data(error)


def db_retrying(
    conf: cfg.ConfigOpts,
    stopping: threading.Event | None = None,
    what: str = "database",
    faults: EnvironmentFaults | None = None,
    give_up: Callable[[], bool] | None = None,
) -> tenacity.Retrying:
    """Retry transient database faults until they pass, ``stopping`` is set or
    ``give_up()`` says the work is no longer wanted (its deliveries' session ended).

    Giving up leaves the message unacknowledged, so RabbitMQ redelivers it.
    ``what`` names the database in the retry log lines. With ``faults``, every
    database error but refused data is waited out too (:func:`is_retried_db_error`),
    and noted there for the health check.
    """
    stop: tenacity.stop.stop_base = (
        tenacity.stop_when_event_set(stopping) if stopping else tenacity.stop_never
    )
    if give_up is not None:
        stop = tenacity.stop_any(stop, _StopWhen(give_up))
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient_db_error if faults is None else is_retried_db_error),
        wait=exponential_wait(conf.worker.db_retry_initial_backoff, conf.worker.db_retry_max_backoff),
        stop=stop,
        sleep=_sleeper(stopping),
        reraise=True,
        before_sleep=log_retry(what) if faults is None else _noting(faults, log_retry(what)),
    )


def _noting(
    faults: EnvironmentFaults, log: Callable[[tenacity.RetryCallState], None]
) -> Callable[[tenacity.RetryCallState], None]:
    """Before each retry: the fault is noted for the health check; a broken environment
    is logged as an error naming the fix, a fault neither transient nor environmental
    (a statement timeout, a cancelled query) as a warning saying it is not the messages'."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if error is None:
            return
        faults.note(error)
        sleep = state.next_action.sleep if state.next_action else 0.0
        if is_environment_fault(error):
            LOG.error(
                "the database refuses our work (%s): fix the database (schema: tracker-manage db sync; "
                "grants; disk); the lane waits, its messages stay unacknowledged, retry %d in %.1fs",
                summary(error),
                state.attempt_number,
                sleep,
            )
        elif is_transient_db_error(error):
            log(state)
        else:
            LOG.warning(
                "the database fails our work (%s), not the messages' fault: the lane waits, its messages "
                "stay unacknowledged, retry %d in %.1fs",
                summary(error),
                state.attempt_number,
                sleep,
            )

    return before_sleep


def _sleeper(stopping: threading.Event | None) -> Callable[[float], None]:
    """Back-off that SIGTERM cuts short: waiting on the stop event, not time.sleep."""
    if stopping is None:
        return tenacity.nap.sleep

    def sleep(seconds: float) -> None:
        stopping.wait(seconds)

    return sleep


def reconnect_retrying(
    conf: cfg.ConfigOpts,
    stopping: threading.Event,
    errors: type[BaseException] | tuple[type[BaseException], ...],
    what: str,
    *,
    before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
    give_up: Callable[[], bool] | None = None,
) -> tenacity.Retrying:
    """Retry a broker operation on ``errors`` with reconnect backoff, until stopping
    (or until ``give_up()`` says the operation is no longer wanted)."""
    stop: tenacity.stop.stop_base = tenacity.stop_when_event_set(stopping)
    if give_up is not None:
        stop = tenacity.stop_any(stop, _StopWhen(give_up))
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(errors),
        wait=exponential_wait(conf.worker.reconnect_initial_backoff, conf.worker.reconnect_max_backoff),
        stop=stop,
        sleep=_sleeper(stopping),
        before_sleep=before_sleep or log_retry(what),
        reraise=True,
    )


class _StopWhen(tenacity.stop.stop_base):
    """Stop retrying once ``predicate()`` holds."""

    def __init__(self, predicate: Callable[[], bool]) -> None:
        self._predicate = predicate

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self._predicate()


def log_retry(what: str) -> Callable[[tenacity.RetryCallState], None]:
    """A ``before_sleep`` hook: one line per retry, error class and first line only."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        LOG.warning(
            "%s: transient failure (%s: %s), attempt %d, retrying in %.2fs",
            what,
            type(error).__name__,
            str(error).splitlines()[0] if error else "",
            state.attempt_number,
            state.next_action.sleep if state.next_action else 0.0,
        )

    return before_sleep
