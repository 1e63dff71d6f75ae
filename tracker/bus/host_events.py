"""Service and aggregate notifications, applied on a thread of their own.

They are not instance events and never enter a lane: a disabled service or a
changed aggregate must neither wait behind nor disturb instance accounting.
Each is one short transaction (keep the newest state, announce the host's
nodes if it changed); results go back to the consumer thread, which acks.
"""

import logging
import queue
from collections.abc import Callable
from typing import Any

from tracker import escape
from tracker.bus.delivery import Delivery
from tracker.bus.outcomes import HostNoted, Refused, Result, Unapplied
from tracker.db.api import Store
from tracker.events.hosts import HostEvent
from tracker.retry import is_retried_db_error

LOG = logging.getLogger(__name__)
_STOP = object()


class HostEvents:
    def __init__(self, store: Store, results: "queue.Queue[Result]", changed: Callable[[], None]) -> None:
        self._store = store
        self._results = results
        self._changed = changed
        self._work: queue.Queue[Any] = queue.Queue()

    def submit(self, delivery: Delivery, event: HostEvent) -> None:
        self._work.put((delivery, event))

    def pending(self) -> int:
        return self._work.unfinished_tasks

    def stop(self) -> None:
        self._work.put(_STOP)

    def run(self) -> None:
        while (item := self._work.get()) is not _STOP:
            try:
                self._results.put(self._apply(*item))
            finally:
                self._work.task_done()

    def _apply(self, delivery: Delivery, event: HostEvent) -> Result:
        if not delivery.live:
            return Unapplied(delivery)
        try:
            # given up once its session ended: RabbitMQ redelivers it
            announced = self._store.apply_host_event(event, give_up=lambda: not delivery.live)
        except Exception as error:
            if is_retried_db_error(error):
                return Unapplied(delivery)  # not its fault: stopping, or its session ended
            LOG.error("a %s notification failed: %s", type(event).__name__, escape.text(error), exc_info=True)
            return Refused(delivery, f"{type(error).__name__}: {error}")
        if announced:
            LOG.info("%s: announced %d node(s) again", escape.text(event), announced)
            self._changed()
        return HostNoted(delivery)
