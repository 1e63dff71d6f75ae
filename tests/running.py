"""A tracker worker running in a thread of the test, on whatever transport and database."""

import threading

from tracker.bus.consumer import Worker
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database


class Running:
    """``with Running(conf) as running``: consuming on entry; stopped, joined and its pool
    closed on exit (the store still answers afterwards, on a new connection)."""

    def __init__(self, conf):
        self.db = Database.from_conf(conf)
        migration.upgrade(self.db.engine)
        self.stopping = threading.Event()
        self.store = Store(self.db, conf, self.stopping)
        self.worker = Worker(conf, self.store, self.stopping)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        assert self.worker.consuming.wait(20.0)
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.db.dispose()
