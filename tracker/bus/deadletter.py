"""Set aside messages that can never be applied, with the reason, minus the context."""

import logging
from typing import Any

import kombu
from oslo_config import cfg

from tracker.bus import amqp
from tracker.events import envelope

LOG = logging.getLogger(__name__)

REASON_HEADER = "x-tracker-reason"


def dead_letter(channel: Any, conf: cfg.ConfigOpts, body: Any, reason: str, routing_key: str | None) -> None:
    """Publish (confirmed) to the dead-letter queue; the caller acks the original after."""
    queue = amqp.dead_letter_queue(conf)
    producer = kombu.Producer(channel)
    producer.publish(
        envelope.sanitize(body, conf.nova_notifications.max_message_bytes),
        exchange="",
        routing_key=queue.name,
        declare=[queue],
        delivery_mode=2,
        content_type="application/json",
        content_encoding="utf-8",
        headers={
            REASON_HEADER: reason[:1000],
            "x-tracker-worker": conf.host,
            "x-original-routing-key": routing_key or "",
        },
    )
    LOG.warning("dead-lettered a message from %s to %s: %s", routing_key, queue.name, reason[:300])
