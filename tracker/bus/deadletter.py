"""Set aside messages that can never be applied, with the reason, minus the context."""

import logging
from collections.abc import Callable
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
        envelope.sanitize(body),
        exchange="",
        routing_key=queue.name,
        declare=[queue],
        delivery_mode=2,
        confirm_timeout=amqp.CONFIRM_TIMEOUT,
        content_type="application/json",
        content_encoding="utf-8",
        headers={
            REASON_HEADER: reason[:1000],
            "x-tracker-worker": conf.host,
            "x-original-routing-key": routing_key or "",
        },
    )
    LOG.warning("dead-lettered a message from %s to %s: %s", routing_key, queue.name, reason[:300])


def browse(conf: cfg.ConfigOpts, handle: Callable[[Any], bool], limit: int) -> int:
    """Offer each dead letter present now to ``handle``; ack those it settles.

    Every letter is held unacknowledged while browsing, so each is seen once
    and those not settled return to the queue, in their order, when the
    channel closes. Returns how many were settled.
    """
    settled = 0
    with amqp.connect(conf) as connection:
        channel = connection.channel()
        queue = amqp.dead_letter_queue(conf)(channel)
        _name, pending, _consumers = queue.queue_declare(passive=True)
        held = [
            message for message in (queue.get(no_ack=False) for _ in range(min(pending, limit))) if message
        ]
        for message in held:
            if handle(message):
                message.ack()
                settled += 1
        channel.close()
    return settled
