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

import time
from typing import Any


class Acks:
    def __init__(self, channel: Any, most_held: int, longest_held: float, multiple: bool = True) -> None:
        self._channel = channel
        self._multiple = multiple
        self._most_held = max(1, most_held)
        self._longest_held = longest_held
        # Received, not settled; insertion order is tag order. Bounded by the
        # prefetch window, unlike a record of every tag acked behind a slow one.
        self._in_flight: dict[int, None] = {}
        self._settled: dict[int, float] = {}  # tag → when settled, not yet acknowledged
        self._changed = False

    def received(self, tag: int) -> None:
        if self._multiple:
            self._in_flight[tag] = None

    def settled(self, tag: int) -> None:
        """``tag`` may be acknowledged: its effect is committed, or its letter confirmed."""
        self._in_flight.pop(tag, None)
        self._settled[tag] = time.monotonic()
        self._changed = True

    def held(self) -> int:
        return len(self._settled)

    def flush(self, final: bool = False) -> None:
        """Acknowledge the settled prefix in one frame; those behind a gap, if held too long."""
        if self._changed and self._multiple:
            self._ack_prefix()
        self._changed = False
        if self._settled and (final or not self._multiple or self._held_too_long()):
            for tag in sorted(self._settled):
                self._channel.basic_ack(tag)
            self._settled.clear()

    def _ack_prefix(self) -> None:
        """Every tag below the lowest one in flight is settled or acknowledged already:
        one ``multiple`` ack up to the highest settled one covers them (RabbitMQ only
        requires that tag itself to be unacknowledged)."""
        lowest_in_flight = next(iter(self._in_flight), None)
        ready = [tag for tag in self._settled if lowest_in_flight is None or tag < lowest_in_flight]
        if ready:
            self._channel.basic_ack(max(ready), multiple=True)
            for tag in ready:
                del self._settled[tag]

    def _held_too_long(self) -> bool:
        oldest = next(iter(self._settled.values()))  # insertion order: settled first
        return len(self._settled) >= self._most_held or time.monotonic() - oldest >= self._longest_held
