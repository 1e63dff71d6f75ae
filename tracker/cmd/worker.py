"""``tracker-worker``: consume Nova's notifications until SIGTERM."""

import logging
import signal
import threading
import types

from tracker.bus.consumer import ConfigurationError, Worker
from tracker.cmd import common
from tracker.db import migration
from tracker.db.api import Store

LOG = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    conf = common.parse_args(argv, description="Account Nova instance usage from notifications.")
    common.setup_logging(conf.debug)
    db = common.database(conf)
    if migration.current(db.engine) != migration.head():
        LOG.error("database schema is not current: run 'tracker-manage db sync' first")
        return 2
    stopping = threading.Event()
    _stop_on_signals(stopping)
    worker = Worker(conf, Store(db, conf, stopping), stopping)
    try:
        worker.run()
    except ConfigurationError as error:
        LOG.error("%s", error)
        return 2
    finally:
        db.dispose()
    return 0


def _stop_on_signals(stopping: threading.Event) -> None:
    def stop(signum: int, _frame: types.FrameType | None) -> None:
        LOG.info("received %s: finishing in-flight messages, then stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
