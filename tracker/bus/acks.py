"""Acknowledgements of one channel, in as few frames as the order of completion allows.

One ``basic.ack`` per message cost a quarter of the consumer thread's time
under a backlog. Delivery tags grow by one per delivery on a channel, so once
every delivery up to a tag is settled, one ``basic.ack(tag, multiple=True)``
settles them all. A delivery that takes long (a lane waiting on a row lock,
a letter the dead-letter queue refuses) must not hold back those settled
after it: they would count against the prefetch window and stop the other
lanes. Settled deliveries behind a gap are therefore acknowledged one by one
once there are ``most_held`` of them or the oldest has waited ``longest_held``
seconds, and all of them when the session ends. Transports that cannot
acknowledge many at once (kombu's virtual ones, ``memory://``) get one
acknowledgement per delivery, as before.

Used by the consumer thread alone: it owns the channel.
"""

import collections
import time
from typing import Any


class Acks:
    def __init__(self, channel: Any, most_held: int, longest_held: float, multiple: bool = True) -> None:
        self._channel = channel
        self._multiple = multiple
        self._most_held = max(1, most_held)
        self._longest_held = longest_held
        self._unsettled: collections.deque[int] = collections.deque()  # receive order
        self._settled: dict[int, float] = {}  # tag → when settled, not yet acknowledged
        self._acked_alone: set[int] = set()  # acknowledged one by one, still in _unsettled

    def received(self, tag: int) -> None:
        if self._multiple:
            self._unsettled.append(tag)

    def settled(self, tag: int) -> None:
        """``tag`` may be acknowledged: its effect is committed, or its letter confirmed."""
        self._settled[tag] = time.monotonic()

    def held(self) -> int:
        return len(self._settled)

    def flush(self, final: bool = False) -> None:
        """Acknowledge the settled prefix in one frame; those behind a gap, if held too long."""
        last = None
        while self._unsettled and (
            self._unsettled[0] in self._settled or self._unsettled[0] in self._acked_alone
        ):
            tag = self._unsettled.popleft()
            if tag in self._acked_alone:
                self._acked_alone.discard(tag)
            else:
                del self._settled[tag]
                last = tag
        if last is not None:
            self._channel.basic_ack(last, multiple=True)
        if self._settled and (final or not self._multiple or self._held_too_long()):
            for tag in sorted(self._settled):
                self._channel.basic_ack(tag)
            if self._multiple:  # else receive order is not kept: nothing to skip later
                self._acked_alone.update(self._settled)
            self._settled.clear()

    def _held_too_long(self) -> bool:
        oldest = min(self._settled.values())
        return len(self._settled) >= self._most_held or time.monotonic() - oldest >= self._longest_held
