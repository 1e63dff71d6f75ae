"""What lanes and the dead-letter thread report back to the consumer thread.

Each names the delivery it is about; the consumer thread alone turns them
into acknowledgements (see ``Worker._settle``).
"""

import dataclasses

from tracker.bus.delivery import Delivery
from tracker.db.apply import Outcome
from tracker.events.model import InstanceEvent


@dataclasses.dataclass(frozen=True)
class Applied:
    """Committed: acknowledge."""

    delivery: Delivery
    event: InstanceEvent
    outcome: Outcome


@dataclasses.dataclass(frozen=True)
class Refused:
    """Poison: set it aside with ``reason``, then acknowledge."""

    delivery: Delivery
    reason: str


@dataclasses.dataclass(frozen=True)
class Unapplied:
    """Not applied (a transient fault outlasted the worker, or its session ended): RabbitMQ
    redelivers it."""

    delivery: Delivery


@dataclasses.dataclass(frozen=True)
class DeadLettered:
    """The dead letter is confirmed: acknowledge."""

    delivery: Delivery


@dataclasses.dataclass(frozen=True)
class HostNoted:
    """A service or aggregate notification is stored: acknowledge."""

    delivery: Delivery


Result = Applied | Refused | Unapplied | DeadLettered | HostNoted
