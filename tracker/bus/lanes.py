"""Ordered lanes: items with the same key run one at a time, in arrival order.

The key is a compute host, hashed with crc32 (``hash()`` differs between
processes). Lanes never touch the AMQP channel: results go back through a
queue to the consumer thread, which alone acknowledges.
"""

import queue
import threading
import time
import zlib
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

_STOP = object()


def lane_index(key: str, lanes: int) -> int:
    # surrogatepass: a host name is whatever the payload said, even a lone surrogate
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % lanes


class Lanes(Generic[Item, Result]):
    def __init__(self, count: int, handle: Callable[[Item], Result], results: "queue.Queue[Result]") -> None:
        self._handle = handle
        self._results = results
        self._queues: list[queue.Queue[object]] = [queue.Queue() for _ in range(count)]
        self._threads = [
            threading.Thread(target=self._run, args=(q,), name=f"lane-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, key: str, item: Item) -> None:
        # Unbounded on purpose: the broker's prefetch bounds what can be queued,
        # and a blocking put would stall the consumer thread and its heartbeats.
        self._queues[lane_index(key, len(self._queues))].put(item)

    def pending(self) -> int:
        return sum(q.unfinished_tasks for q in self._queues)

    def stop(self, timeout: float) -> bool:
        """Let queued items finish, then end the threads; False if time ran out."""
        for q in self._queues:
            q.put(_STOP)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _run(self, items: "queue.Queue[object]") -> None:
        while True:
            item = items.get()
            try:
                if item is _STOP:
                    return
                self._results.put(self._handle(item))  # type: ignore[arg-type]
            finally:
                items.task_done()
