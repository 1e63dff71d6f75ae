"""Ordered lanes: items with the same key run one batch at a time, in arrival order.

The key is a compute host, hashed with crc32 (``hash()`` differs between
processes). A lane takes what has queued up for it, up to ``batch_size`` items,
waiting at most ``batch_wait`` seconds for more once it has one, and hands
them to ``handle`` together: one transaction for many events (group commit).
Lanes never touch the AMQP channel: results go back through a queue to the
consumer thread, which alone acknowledges.
"""

import queue
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

_STOP = object()


def lane_index(key: str, lanes: int) -> int:
    # surrogatepass: a host name is whatever the payload said, even a lone surrogate
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % lanes


class Lanes(Generic[Item, Result]):
    def __init__(
        self,
        count: int,
        handle: Callable[[Sequence[Item]], Sequence[Result]],
        results: "queue.Queue[Result]",
        batch_size: int = 1,
        batch_wait: float = 0.0,
    ) -> None:
        self._handle = handle
        self._results = results
        self._batch_size = batch_size
        self._batch_wait = batch_wait
        self._queues: list[queue.Queue[object]] = [queue.Queue() for _ in range(count)]
        # when each lane's batch in progress started; None while it waits for work
        self._busy_since: list[float | None] = [None] * count
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"lane-{i}", daemon=True) for i in range(count)
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

    def longest_batch(self) -> float:
        """Seconds the slowest batch in progress has run: one lane stuck (a row lock,
        a hung database call) shows here even while the others make progress."""
        now = time.monotonic()
        return max((now - since for since in self._busy_since if since is not None), default=0.0)

    def stop(self, timeout: float) -> bool:
        """Let queued items finish, then end the threads; False if time ran out."""
        for q in self._queues:
            q.put(_STOP)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _run(self, lane: int) -> None:
        items = self._queues[lane]
        stopping = False
        while not stopping:
            batch = self._take(items)
            stopping = _STOP in batch
            work = [item for item in batch if item is not _STOP]
            self._busy_since[lane] = time.monotonic()
            try:
                if work:
                    for result in self._handle(work):  # type: ignore[arg-type]
                        self._results.put(result)
            finally:
                self._busy_since[lane] = None
                for _ in batch:
                    items.task_done()

    def _take(self, items: "queue.Queue[object]") -> list[object]:
        """One item (waiting as long as it takes), then whatever follows within the bounds."""
        batch = [items.get()]
        deadline = time.monotonic() + self._batch_wait
        while len(batch) < self._batch_size and batch[-1] is not _STOP:
            try:
                batch.append(items.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch
