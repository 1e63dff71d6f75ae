"""Capacity notifications in the envelope a stock oslo.messaging listener reads."""

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


class Confirms:
    """Publisher confirms for many messages at once: publish them all, then wait once.

    py-amqp's confirm mode (``confirm_publish``) waits for each message's
    confirm before the next publish: one round trip per capacity notification,
    which made the relay the slowest thread under a backlog. RabbitMQ numbers
    a channel's publishes from 1 once confirms are selected and acks them,
    often many at once (``multiple``).
    """

    def __init__(self, connection: kombu.Connection) -> None:
        self._connection = connection
        channel = connection.default_channel
        channel.confirm_select()
        channel.events["basic_ack"].add(self._acked)
        channel.events["basic_nack"].add(self._nacked)
        self._sequence = 0
        self._unconfirmed: set[int] = set()
        self._refused = 0

    def published(self) -> None:
        self._sequence += 1
        self._unconfirmed.add(self._sequence)

    def wait(self, timeout: float) -> None:
        """Until the broker confirmed every message published; raises if it refused one."""
        deadline = time.monotonic() + timeout
        while self._unconfirmed and not self._refused:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._unconfirmed)} publishes unconfirmed after {timeout:.0f}s")
            self._connection.drain_events(timeout=remaining)
        if self._refused:
            raise MessageNacked(f"RabbitMQ refused {self._refused} capacity notifications")

    def _acked(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _nacked(self, tag: int, multiple: bool) -> None:
        self._refused += 1
        self._settle(tag, multiple)

    def _settle(self, tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {sequence for sequence in self._unconfirmed if sequence > tag}
        else:
            self._unconfirmed.discard(tag)


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
