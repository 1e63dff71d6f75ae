"""Periodic re-announcement of every node, so a scheduler that starts cold, restarts
or lost its queue converges within one interval, as Nova's computes report every
60 seconds. The nodes are spread over the interval (those whose id is i mod n in
step i), not sent in one burst; a re-announce carries the node's current
generation, which a subscriber that has it simply drops."""

import logging
import time
from collections.abc import Callable
from typing import Any

from tracker.db.api import Store

LOG = logging.getLogger(__name__)

# one slice of the nodes per this many seconds (fewer when the interval is shorter)
STEP = 1.0


class Announcer:
    def __init__(self, store: Store, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._interval = interval
        self._parts = max(1, round(interval / STEP))
        self._step = interval / self._parts if interval > 0 else 0.0
        self._clock = clock
        self._next_at = clock()
        self._index = 0
        self.announced = 0

    def seconds_until_due(self) -> float | None:
        """None when disabled (interval 0)."""
        if self._interval <= 0:
            return None
        return max(0.0, self._next_at - self._clock())

    def step(self, publish: Callable[[list[dict[str, Any]]], None]) -> int:
        """Announce the next slice if it is due; returns how many nodes were announced."""
        due = self.seconds_until_due()
        if due is None or due > 0:
            return 0
        payloads = self._store.node_payloads(part=(self._index, self._parts))
        if payloads:
            publish(payloads)
        self._index = (self._index + 1) % self._parts
        # from now, not from the missed time: a relay that was down does not burst to catch up
        self._next_at = self._clock() + self._step
        self.announced += len(payloads)
        return len(payloads)
