"""Capacity notifications are published many at a time and confirmed once, on real RabbitMQ."""

import uuid

import kombu
import pytest
from amqp.exceptions import MessageNacked

from tests import factories
from tests.conftest import RABBIT_URL, make_conf, require
from tracker.bus import amqp
from tracker.bus.publisher import CapacityPublisher

pytestmark = pytest.mark.functional


@pytest.fixture
def published():
    """A publisher on the relay's kind of connection, and a queue bound to its exchange."""
    require("rabbitmq")
    suffix = uuid.uuid4().hex[:8]
    conf = make_conf(
        DEFAULT={"transport_url": RABBIT_URL}, capacity_notifications={"exchange": f"cap-{suffix}"}
    )
    connection = amqp.connect(conf, confirm_each=False)
    publisher = CapacityPublisher(connection, conf)
    channel = connection.channel()

    def bind(**arguments):
        queue = kombu.Queue(
            f"cap-{suffix}-{len(arguments)}",
            exchange=amqp.capacity_exchange(conf),
            routing_key="capacity_notifications.info",
            queue_arguments=arguments,
        )
        queue(channel).declare()
        return queue.name

    yield publisher, channel, bind
    for name in (f"cap-{suffix}-0", f"cap-{suffix}-2"):
        channel.queue_delete(name)
    channel.exchange_delete(f"cap-{suffix}")
    connection.release()


def test_a_batch_returns_once_the_broker_has_every_message(published):
    publisher, channel, bind = published
    queue = bind()
    publisher.publish([factories.capacity_payload(f"node-{i}", generation=i) for i in range(300)])
    assert channel.queue_declare(queue, passive=True).message_count == 300
    publisher.publish([factories.capacity_payload("node-x")])  # the next batch waits for its own
    assert channel.queue_declare(queue, passive=True).message_count == 301


def test_a_refused_message_fails_the_batch(published):
    """The relay then keeps the outbox rows and publishes them again later."""
    publisher, _channel, bind = published
    bind(**{"x-max-length": 5, "x-overflow": "reject-publish"})
    with pytest.raises(MessageNacked):
        publisher.publish([factories.capacity_payload(f"node-{i}", generation=i) for i in range(20)])
