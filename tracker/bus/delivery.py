"""A message received on one broker session, and that session's lifetime.

A delivery can only be acknowledged on the channel it came from. When the
session ends (connection lost, closed, stopping) it is marked closed *before*
the connection is released: deliveries the close handshake still hands over,
and work finished afterwards, are then dropped instead of acked on a dead
channel; RabbitMQ redelivers them, and applying one twice changes nothing.
"""

import dataclasses
from typing import Any

from tracker.bus.acks import Acks


class Session:
    """One channel's consuming lifetime; ``open`` only goes from True to False."""

    def __init__(self, acks: Acks) -> None:
        self.open = True
        self.acks = acks

    def close(self) -> None:
        self.open = False


@dataclasses.dataclass(frozen=True)
class Delivery:
    session: Session
    message: Any  # kombu.Message: acknowledged only by the consumer thread

    @property
    def live(self) -> bool:
        return self.session.open

    @property
    def routing_key(self) -> str:
        return str(self.message.delivery_info.get("routing_key") or "")
