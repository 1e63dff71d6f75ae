"""Publisher confirms on a fake py-amqp connection: what RabbitMQ says, in the order it says it."""

import collections

import pytest
from amqp.exceptions import MessageNacked

from tracker.bus.publisher import Blocked, Confirms


class FakeConnection:
    """Enough of kombu's connection for Confirms: ``frames`` are handed over one per drain."""

    def __init__(self):
        self.frames = collections.deque()
        self.connection = self  # py-amqp's own connection, where on_blocked lives
        self.default_channel = self
        self.events = {"basic_ack": set(), "basic_nack": set()}

    def confirm_select(self):
        pass

    def drain_events(self, timeout=None):
        if not self.frames:
            raise TimeoutError
        self.frames.popleft()()


def test_a_blocked_connection_fails_the_round_at_once_and_recovers_once_unblocked():
    connection = FakeConnection()
    confirms = Confirms(connection)
    connection.frames.append(lambda: connection.on_blocked("low on memory"))
    with pytest.raises(Blocked, match=r"RabbitMQ blocks publishing \(low on memory\)"):
        confirms.check_not_blocked()
    connection.frames.append(connection.on_unblocked)
    confirms.check_not_blocked()


def test_a_block_while_waiting_for_confirms_ends_the_wait():
    connection = FakeConnection()
    confirms = Confirms(connection)
    confirms.published()
    connection.frames.append(lambda: connection.on_blocked("low on disk"))
    with pytest.raises(Blocked):
        confirms.wait(timeout=30)


def test_a_nack_counts_the_messages_it_refuses_not_the_frame():
    connection = FakeConnection()
    confirms = Confirms(connection)
    for _ in range(5):
        confirms.published()
    (nacked,) = connection.events["basic_nack"]
    connection.frames.append(lambda: nacked(4, True))  # one frame refusing 1..4
    with pytest.raises(MessageNacked, match="refused at least 4 of the 5 capacity notifications"):
        confirms.wait(timeout=30)
