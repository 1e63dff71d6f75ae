"""Capacity notifications in the envelope a stock oslo.messaging listener reads."""

import datetime
import json
import uuid
from typing import Any

import kombu
from oslo_config import cfg

from tracker.bus import amqp
from tracker.db.capacity import EVENT_TYPE


def capacity_message(payload: dict[str, Any], publisher_id: str, now: datetime.datetime) -> dict[str, str]:
    """oslo.messaging ``messagingv2``: the inner message JSON-encoded under ``oslo.message``."""
    inner = {
        "message_id": str(uuid.uuid4()),
        "publisher_id": publisher_id,
        "event_type": EVENT_TYPE,
        "priority": "INFO",
        "payload": payload,
        "timestamp": str(now),
        # oslo.messaging's listener de-duplicates on this key.
        "_unique_id": uuid.uuid4().hex,
    }
    return {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}


class CapacityPublisher:
    def __init__(self, connection: kombu.Connection, conf: cfg.ConfigOpts) -> None:
        group = conf.capacity_notifications
        self._exchange = amqp.capacity_exchange(conf)
        self._routing_key = f"{group.topic}.info"
        self._publisher_id = f"tracker:{conf.host}"
        self._producer = kombu.Producer(connection.default_channel)
        self._exchange.declare(channel=connection.default_channel)

    def publish(self, payloads: list[dict[str, Any]]) -> None:
        """Publish each payload; returns once the broker confirmed them (confirm mode)."""
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        for payload in payloads:
            self._producer.publish(
                capacity_message(payload, self._publisher_id, now),
                exchange=self._exchange,
                routing_key=self._routing_key,
                serializer="json",
                delivery_mode=2 if self._exchange.durable else 1,
                # bounded: a broker in a memory alarm must not hold the outbox
                # transaction (and SQLite's write lock) forever
                confirm_timeout=amqp.CONFIRM_TIMEOUT,
            )
