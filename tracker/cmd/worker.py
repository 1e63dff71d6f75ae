"""``tracker-worker``: consume Nova's notifications until SIGTERM."""

import contextlib
import datetime
import io
import logging
import signal
import threading
import types

import sqlalchemy.exc
from oslo_config import cfg

from tracker import escape, health
from tracker.bus import amqp
from tracker.bus.consumer import Worker
from tracker.cmd import common
from tracker.cmd.supervisor import Supervisor
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database, describe
from tracker.errors import ConfigError, OperatorError
from tracker.retry import db_retrying

LOG = logging.getLogger(__name__)

# How often the reload thread looks whether it should stop.
_RELOAD_POLL = 0.5


def main(argv: list[str] | None = None) -> int:
    return common.run(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    description = "Account Nova instance usage from notifications."
    conf = common.start(argv, description=description, log_to_stderr=False)
    stopping = threading.Event()
    _stop_on_signals(stopping)
    supervisor = None
    if conf.worker.workers > 1:
        supervisor = Supervisor(
            conf.worker.workers,
            lambda index: _child(conf, index, stopping),
            stopping,
            conf.worker.shutdown_timeout,
            exited=lambda index, why: _report_exited(conf, index, why),
        )
    _reload_on_sighup(conf, stopping, supervisor)
    try:
        return _run(conf, stopping, supervisor)
    except OperatorError as error:
        failure = error
    if _logs_elsewhere(conf):
        # in the log file or journal too (logged out of the except block: oslo.log would append
        # the active exception); on a terminal common.run's one line says it, once
        LOG.error("%s", failure)
    raise failure


def _run(conf: cfg.ConfigOpts, stopping: threading.Event, supervisor: Supervisor | None) -> int:
    LOG.info("broker: %s", amqp.describe(conf))
    amqp.check_tls(conf)
    db = _database(conf, stopping)
    if db is None:
        return 0  # stopped while waiting for the database
    if supervisor is None:
        _consume(conf, db, stopping)
        return 0
    db.dispose()  # checked; each process opens its own connections
    if supervisor.run() == ConfigError.exit_code:
        # the one line a single process would end with; the process's own line says which
        raise ConfigError(
            "a worker process ended on a configuration mistake: its ERROR line in the log says which"
        )
    return 0


def _consume(conf: cfg.ConfigOpts, db: Database, stopping: threading.Event) -> None:
    try:
        Worker(conf, Store(db, conf, stopping), stopping).run()
    finally:
        db.dispose()


def _report_exited(conf: cfg.ConfigOpts, index: int, why: str) -> None:
    """A process that ended fails the probe at once, until its successor writes its own
    record, instead of passing on its last record until that ages."""
    if conf.worker.health_file:
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        record = health.record(conf.host, {}, 0, now, problems=[why])
        health.save(health.child_path(conf.worker.health_file, index), record)


def _child(conf: cfg.ConfigOpts, index: int, stopping: threading.Event) -> int:
    """One of ``[worker] workers`` processes: a worker like a single one, but for its own
    health record, and only the first re-announcing nodes (N would send N times the traffic)."""
    if conf.worker.health_file:
        conf.set_override("health_file", health.child_path(conf.worker.health_file, index), group="worker")
    if index:
        conf.set_override("announce_interval", 0.0, group="capacity_notifications")
    _reload_on_sighup(conf, stopping, None)
    try:
        _consume(conf, Database.from_conf(conf), stopping)
    except OperatorError as error:
        LOG.error("worker process %d: %s", index, error)
        return error.exit_code
    return 0


def _logs_elsewhere(conf: cfg.ConfigOpts) -> bool:
    """The log goes somewhere else than the terminal common.run writes to: a file, the
    journal, syslog, or a machine reading JSON records (which wants that one too)."""
    return bool(conf.log_file or conf.log_dir or conf.use_journal or conf.use_syslog or conf.use_json)


def _database(conf: cfg.ConfigOpts, stopping: threading.Event) -> Database | None:
    """The database at the current schema, waiting (as for RabbitMQ) while it is
    unreachable; None if told to stop meanwhile. Anything an operator must fix
    (no such database, wrong password, no schema) is an OperatorError at once."""
    db = Database.from_conf(conf)
    common.require_file(db)
    where = describe(db.engine.url)
    LOG.info("database: %s", where)
    try:
        current = db_retrying(conf, stopping, what=f"database {where}")(migration.current, db.engine)
    except sqlalchemy.exc.DBAPIError as error:
        db.dispose()
        if stopping.is_set():
            return None
        raise OperatorError(f"cannot use the database {where}: {common.first_line(error)}") from error
    if current != migration.head():
        db.dispose()
        raise OperatorError(
            f"the database {where} is at schema revision {current or 'none'}, this tracker needs "
            f"{migration.head()}: run 'tracker-manage db sync' first"
        )
    return db


def _stop_on_signals(stopping: threading.Event) -> None:
    def stop(signum: int, _frame: types.FrameType | None) -> None:
        LOG.info("received %s: finishing in-flight messages, then stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _reload_on_sighup(conf: cfg.ConfigOpts, stopping: threading.Event, supervisor: Supervisor | None) -> None:
    """SIGHUP re-reads the configuration files and applies the mutable options
    (the log level: ``debug``), as oslo.service does; the others need a restart.
    A supervisor passes it on: each worker process reloads its own.

    The handler only raises a flag: reloading takes logging's locks, which the
    interrupted main thread may hold.
    """
    requested = threading.Event()

    def reload_when_asked() -> None:
        while not stopping.is_set():
            if requested.wait(_RELOAD_POLL):
                requested.clear()
                # a file that does not load would only be reported again by each process
                if _reload(conf) and supervisor is not None:
                    supervisor.forward(signal.SIGHUP)

    signal.signal(signal.SIGHUP, lambda _signum, _frame: requested.set())
    threading.Thread(target=reload_when_asked, name="reload", daemon=True).start()


def _reload(conf: cfg.ConfigOpts) -> bool:
    LOG.info("received SIGHUP: reloading %s", ", ".join(conf.config_file) or "(no configuration file)")
    said = io.StringIO()
    try:
        # argparse reports a bad value of a command-line option (debug = abc) on
        # stderr and exits: that must end neither the worker nor this thread
        with contextlib.redirect_stderr(said):
            conf.mutate_config_files()
    except (Exception, SystemExit) as error:  # noqa: BLE001 - a bad file must not stop reloading
        lines = [line for line in said.getvalue().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"{type(error).__name__}: {error}"
    else:
        LOG.info("configuration reloaded; debug is %s", conf.debug)
        return True
    # out of the except block: oslo.log would append the exception the line already says
    LOG.error("configuration not reloaded: %s; the previous one stays in force", escape.text(reason))
    return False
