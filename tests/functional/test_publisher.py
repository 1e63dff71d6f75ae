"""Capacity notifications are published many at a time and confirmed once, on real RabbitMQ."""

import re
import threading
import time
import uuid

import kombu
import pytest
from amqp.exceptions import MessageNacked

from tests import factories
from tests.conftest import RABBIT_URL, make_conf, require
from tests.proxy import Proxy
from tracker.bus import amqp
from tracker.bus.publisher import CapacityPublisher
from tracker.db.hosts import HostFacts

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
    with pytest.raises(MessageNacked) as refused:
        publisher.publish([factories.capacity_payload(f"node-{i}", generation=i) for i in range(20)])
    # messages, not nack frames (one frame may nack many), counted until the first refusal
    assert re.fullmatch(
        r"RabbitMQ refused at least \d+ of the 20 capacity notifications of this round", str(refused.value)
    ), refused.value


def test_a_round_on_a_connection_that_stops_reading_fails_within_the_confirm_timeout(monkeypatch):
    """A broker in a memory alarm stops reading publishers: the socket write blocks. The
    round (and the outbox transaction around it, holding SQLite's write lock) must end.
    On Linux py-amqp's default TCP_USER_TIMEOUT (1 s) already ends it; the write timeout
    the relay's connection sets (SO_SNDTIMEO) bounds it wherever that does not apply."""
    require("rabbitmq")
    monkeypatch.setattr(amqp, "CONFIRM_TIMEOUT", 1.0)
    suffix = uuid.uuid4().hex[:8]
    with Proxy("127.0.0.1", 5672) as proxy:
        conf = make_conf(
            DEFAULT={"transport_url": f"rabbit://guest:guest@127.0.0.1:{proxy.port}/"},
            capacity_notifications={"exchange": f"cap-{suffix}"},
        )
        connection = amqp.connect(conf, confirm_each=False)
        try:
            publisher = CapacityPublisher(connection, conf)
            publisher.publish([factories.capacity_payload("node-0", generation=1)])
            proxy.hold()  # no byte read any more: the kernel buffers fill, then the write blocks
            outcome = []

            def round_of_big_payloads():
                try:
                    publisher.publish([_big_payload(f"node-{i}") for i in range(60)])
                    outcome.append("returned")
                except Exception as error:
                    outcome.append(error)

            started = time.monotonic()
            thread = threading.Thread(target=round_of_big_payloads, daemon=True)
            thread.start()
            thread.join(8)
            assert not thread.is_alive(), "the publish round still blocks on the socket"
            assert "timed out" in str(outcome[0]), outcome  # py-amqp's write timeout, via kombu
            assert time.monotonic() - started < 6
        finally:
            amqp.discard(connection)
    with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as admin:
        admin.default_channel.exchange_delete(f"cap-{suffix}")


def _big_payload(host):
    """About 500 kB, still a valid capacity payload: a host in many aggregates."""
    aggregates = tuple((str(uuid.UUID(int=n)), f"aggregate-{n:06d}-" + "x" * 200) for n in range(2000))
    return factories.capacity_payload(host, generation=2, facts=HostFacts(aggregates=aggregates))
