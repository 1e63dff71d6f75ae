"""What every console script does first: options, logging, database; and the one
line an operator gets, instead of a traceback, for a mistake they can fix."""

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

import sqlalchemy.exc
from oslo_config import cfg
from oslo_log import formatters
from oslo_log import log as oslo_log

import tracker
from tracker import conf as tracker_conf
from tracker import escape
from tracker.bus import amqp
from tracker.conf import check
from tracker.db import migration
from tracker.db.engine import Database, describe
from tracker.errors import ConfigError, OperatorError

LOG = logging.getLogger(__name__)

# oslo.log's defaults, plus: kombu's INFO is what an operator wants, alembic's
# is noise on every command.
_LOG_LEVELS = ["kombu=INFO", "alembic=WARN"]


def run(main: Callable[[], int]) -> int:
    """``main()``'s exit code; an operator's mistake is one line on stderr and a non-zero exit."""
    prog = os.path.basename(sys.argv[0])
    try:
        return main()
    except OperatorError as error:
        code = error.exit_code
        message = str(error)
    except (cfg.ConfigFilesNotFoundError, cfg.ConfigFileParseError, cfg.ConfigDirNotFoundError) as error:
        code, message = 2, f"{error}: check --config-file"
    except oslo_log.LogConfigError as error:
        code, message = 2, str(error)
    except KeyboardInterrupt:
        return 130  # Ctrl-C on tracker-status --watch: the shell's code, no traceback
    print(f"{prog}: error: {escape.text(message, 2000)}", file=sys.stderr)
    return code


def start(
    argv: list[str] | None,
    cli_opts: list[cfg.Opt] | tuple[()] = (),
    description: str = "",
    *,
    log_to_stderr: bool = True,
) -> cfg.ConfigOpts:
    """What a console script does first: :func:`parse_args`, then logging.

    ``log_to_stderr``: commands whose standard output is their result log to
    stderr unless told otherwise; the worker keeps oslo.log's default.
    """
    conf = parse_args(argv, cli_opts, description)
    if log_to_stderr:
        conf.set_default("use_stderr", True)
    setup_logging(conf)
    return conf


def parse_args(
    argv: list[str] | None, cli_opts: list[cfg.Opt] | tuple[()] = (), description: str = ""
) -> cfg.ConfigOpts:
    """A fresh ConfigOpts with every tracker and oslo.log option plus the script's
    CLI options, parsed, every value checked."""
    conf = cfg.ConfigOpts()
    tracker_conf.register_opts(conf)
    oslo_log.register_options(conf)
    oslo_log.set_defaults(default_log_levels=[*oslo_log.get_default_log_levels(), *_LOG_LEVELS])
    conf.register_cli_opts(cli_opts)
    conf(
        args=sys.argv[1:] if argv is None else argv,
        project="tracker",
        description=description,
        version=tracker.__version__,
    )
    check.check_values(conf)
    amqp.broker_urls(conf.transport_url)  # an unsupported scheme or a bad port is a ConfigError now
    amqp.ssl_options(conf)  # so is ?ssl=maybe
    return conf


def setup_logging(conf: cfg.ConfigOpts) -> None:
    """oslo.log, with its text formatter made data-safe: one record, one line; then
    the configuration's unknown sections and options, named."""
    try:
        oslo_log.setup(conf, "tracker", version=tracker.__version__)
    except OSError as error:  # a log file or directory that cannot be written
        raise ConfigError(f"cannot open the log file: {error}") from error
    except RuntimeError as error:  # use_journal or use_syslog where they cannot work
        hint = ": pip install 'tracker[systemd]' for use_journal" if conf.use_journal else ""
        raise ConfigError(f"cannot set up logging ({error}){hint}") from error
    for handler in logging.getLogger().handlers:
        if type(handler.formatter) is formatters.ContextFormatter:
            handler.setFormatter(
                escape.OneLineContextFormatter(
                    project="tracker",
                    version=tracker.__version__,
                    datefmt=conf.log_date_format,
                    config=conf,
                )
            )
    for unknown in check.unknown_options(conf):
        LOG.warning("ignoring unknown %s: no such option (misspelt?)", unknown)


def database(conf: cfg.ConfigOpts, *, create: bool = False, schema: bool = True) -> Database:
    """The configured database, reachable and (``schema``) at the current schema.

    ``create``: ``db sync`` only; no other command creates a SQLite file the
    operator did not make.
    """
    db = Database.from_conf(conf)
    if not create:
        require_file(db)
    current = schema_revision(db)
    if schema and current != migration.head():
        db.dispose()
        raise OperatorError(
            f"the database {describe(db.engine.url)} is at schema revision {current or 'none'}, "
            f"this tracker needs {migration.head()}: run 'tracker-manage db sync'"
        )
    return db


def require_file(db: Database) -> None:
    """A SQLite database must have been created by ``db sync``: no other command makes one."""
    path = db.engine.url.database
    if db.dialect == "sqlite" and path not in (None, "", ":memory:") and not os.path.exists(path):
        raise OperatorError(f"no SQLite database at {path}: run 'tracker-manage db sync' to create it")


def schema_revision(db: Database) -> str | None:
    """The schema's revision; an unreachable or refusing database is one line."""
    with database_errors(db):
        return migration.current(db.engine)


@contextlib.contextmanager
def database_errors(db: Database) -> Iterator[None]:
    """A database error (unreachable, refusing: no CREATE on the schema, a revoked
    grant) as one line naming the database's host:port, never its password."""
    try:
        yield
    except sqlalchemy.exc.DBAPIError as error:
        db.dispose()
        raise OperatorError(
            f"cannot use the database {describe(db.engine.url)}: {first_line(error)}"
        ) from error


def first_line(error: sqlalchemy.exc.DBAPIError) -> str:
    """The driver's own message, first line: what the server said, not SQLAlchemy's wrapping."""
    text = str(error.orig or error).strip()
    return text.splitlines()[0] if text else type(error.orig).__name__


def open_input(path: str) -> TextIO:
    """A file the operator named on the command line; a missing one is one line."""
    try:
        return open(path, encoding="utf-8")
    except OSError as error:
        raise OperatorError(f"cannot read {path}: {error.strerror or error}") from error
