"""Capacity notifications in the envelope a stock oslo.messaging listener reads."""

import contextlib
import datetime
import json
import time
import uuid
from typing import Any

import kombu
from amqp.exceptions import MessageNacked
from oslo_config import cfg

from tracker.bus import amqp
from tracker.db.capacity import EVENT_TYPE

INFO = "info"
# alerts: a stock listener hands them to its endpoints' ``error`` method
ERROR = "error"


def capacity_message(
    payload: dict[str, Any],
    publisher_id: str,
    now: datetime.datetime,
    event_type: str = EVENT_TYPE,
    priority: str = INFO,
) -> dict[str, str]:
    """oslo.messaging ``messagingv2``: the inner message JSON-encoded under ``oslo.message``."""
    inner = {
        "message_id": str(uuid.uuid4()),
        "publisher_id": publisher_id,
        "event_type": event_type,
        "priority": priority.upper(),
        "payload": payload,
        "timestamp": str(now),
        # oslo.messaging's listener de-duplicates on this key.
        "_unique_id": uuid.uuid4().hex,
    }
    return {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}


class Blocked(ConnectionError):
    """RabbitMQ blocks our publishes (a memory or disk alarm): try again later."""


class Confirms:
    """Publisher confirms for many messages at once: publish them all, then wait once.

    py-amqp's confirm mode (``confirm_publish``) waits for each message's
    confirm before the next publish: one round trip per capacity notification,
    which made the relay the slowest thread under a backlog. RabbitMQ numbers
    a channel's publishes from 1 once confirms are selected and acks them,
    often many at once (``multiple``).

    It also listens for ``connection.blocked``: while RabbitMQ blocks us (a
    resource alarm), publishing would only fill the socket, so a round fails at
    once and the caller's transaction ends (see :func:`amqp.connect`'s write timeout
    for a block that comes mid-round).
    """

    def __init__(self, connection: kombu.Connection) -> None:
        self._connection = connection
        channel = connection.default_channel
        channel.confirm_select()
        channel.events["basic_ack"].add(self._acked)
        channel.events["basic_nack"].add(self._nacked)
        raw = connection.connection  # py-amqp's: it calls these on connection.blocked/unblocked
        raw.on_blocked = self._blocked
        raw.on_unblocked = self._unblocked
        self.blocked: str | None = None
        self._sequence = 0
        self._round = 0  # published since the last wait
        self._unconfirmed: set[int] = set()
        self._refused = 0

    def published(self) -> None:
        self._sequence += 1
        self._round += 1
        self._unconfirmed.add(self._sequence)

    def check_not_blocked(self) -> None:
        """Raise :class:`Blocked` if RabbitMQ said it blocks us (read what it sent first)."""
        with contextlib.suppress(TimeoutError):
            self._connection.drain_events(timeout=0)
        if self.blocked is not None:
            raise Blocked(f"RabbitMQ blocks publishing ({self.blocked}): a memory or disk alarm")

    def wait(self, timeout: float) -> None:
        """Until the broker confirmed every message published; raises if it refused one,
        if it blocks us, or after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._unconfirmed and not self._refused and self.blocked is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._unconfirmed)} publishes unconfirmed after {timeout:.0f}s")
            self._connection.drain_events(timeout=remaining)
        if self._refused:
            # the wait ends at the first refusal: later ones are not counted yet
            raise MessageNacked(
                f"RabbitMQ refused at least {self._refused} of the {self._round} capacity notifications "
                "of this round"
            )
        if self._unconfirmed:
            self.check_not_blocked()
        self._round = 0

    def _blocked(self, reason: str) -> None:
        self.blocked = reason

    def _unblocked(self) -> None:
        self.blocked = None

    def _acked(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _nacked(self, tag: int, multiple: bool) -> None:
        self._refused += len(self._settle(tag, multiple))

    def _settle(self, tag: int, multiple: bool) -> set[int]:
        """Forget the publishes ``tag`` settles; returns them (a nack counts messages, not frames)."""
        settled = {sequence for sequence in self._unconfirmed if sequence <= tag} if multiple else {tag}
        settled &= self._unconfirmed
        self._unconfirmed -= settled
        return settled


class CapacityPublisher:
    """Publishes on a connection made with ``amqp.connect(conf, confirm_each=False)``."""

    def __init__(self, connection: kombu.Connection, conf: cfg.ConfigOpts) -> None:
        group = conf.capacity_notifications
        self._exchange = amqp.capacity_exchange(conf)
        self._topic = group.topic
        self._publisher_id = f"tracker:{conf.host}"
        self._producer = kombu.Producer(connection.default_channel)
        self._exchange.declare(channel=connection.default_channel)
        # kombu's in-memory transports (unit tests) deliver synchronously and have no confirms
        self._confirms = Confirms(connection) if connection.transport.driver_type == "amqp" else None

    def publish(self, payloads: list[dict[str, Any]]) -> None:
        """Publish each capacity update; returns once the broker confirmed them all."""
        self.publish_events([(EVENT_TYPE, payload) for payload in payloads], INFO)

    def publish_alerts(self, alerts: list[tuple[str, dict[str, Any]]]) -> None:
        self.publish_events(alerts, ERROR)

    def publish_events(self, events: list[tuple[str, dict[str, Any]]], priority: str) -> None:
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        if self._confirms is not None:
            self._confirms.check_not_blocked()
        for event_type, payload in events:
            self._producer.publish(
                capacity_message(payload, self._publisher_id, now, event_type, priority),
                exchange=self._exchange,
                routing_key=f"{self._topic}.{priority}",
                serializer="json",
                delivery_mode=2 if self._exchange.durable else 1,
            )
            if self._confirms is not None:
                self._confirms.published()
        if self._confirms is not None:
            # bounded: a broker in a memory alarm must not hold the outbox
            # transaction (and SQLite's write lock) forever
            self._confirms.wait(amqp.CONFIRM_TIMEOUT)
