"""Acknowledgements in few frames: never twice, never early, never held for ever."""

import tracemalloc

import hypothesis
import hypothesis.strategies as st

from tracker.bus.acks import Acks


class Broker:
    """A channel's view of its deliveries as RabbitMQ keeps it: acking an unknown or
    already acknowledged tag is a channel error (PRECONDITION_FAILED)."""

    def __init__(self) -> None:
        self.unacked: set[int] = set()
        self.frames: list[tuple[int, bool]] = []

    def deliver(self, acks: Acks, tag: int) -> None:
        self.unacked.add(tag)
        acks.received(tag)

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        if tag not in self.unacked:
            raise AssertionError(f"PRECONDITION_FAILED - unknown delivery tag {tag}")
        self.frames.append((tag, multiple))
        if multiple:
            self.unacked = {t for t in self.unacked if t > tag}
        else:
            self.unacked.discard(tag)


def delivered(count: int, most_held: int = 100, longest_held: float = 60.0) -> tuple[Broker, Acks]:
    broker = Broker()
    acks = Acks(broker, most_held=most_held, longest_held=longest_held)
    for tag in range(1, count + 1):
        broker.deliver(acks, tag)
    return broker, acks


def test_settled_in_order_is_one_frame():
    broker, acks = delivered(500)
    for tag in range(1, 501):
        acks.settled(tag)
    acks.flush()
    assert broker.frames == [(500, True)]
    assert broker.unacked == set()


def test_nothing_is_acked_before_it_settled():
    broker, acks = delivered(5)
    for tag in (2, 3, 5):
        acks.settled(tag)
    acks.flush()
    assert broker.frames == []
    acks.settled(1)
    acks.flush()
    assert broker.frames == [(3, True)]
    assert broker.unacked == {4, 5}


def test_a_slow_delivery_does_not_hold_back_many_settled_after_it():
    """They would fill the prefetch window and stop every other lane."""
    broker, acks = delivered(6, most_held=3)
    for tag in (2, 3, 4):
        acks.settled(tag)
    acks.flush()
    assert broker.unacked == {1, 5, 6}
    acks.settled(1)
    acks.settled(5)
    acks.flush()
    assert broker.frames[-1] == (5, True)  # one frame past 2..4, acked already
    assert broker.unacked == {6}
    acks.settled(6)
    acks.flush()
    assert broker.unacked == set()


def test_settled_deliveries_behind_a_gap_wait_at_most_longest_held():
    broker, acks = delivered(3, longest_held=0.0)
    acks.settled(3)
    acks.flush()
    assert broker.unacked == {1, 2}


def test_the_session_end_acks_everything_settled():
    broker, acks = delivered(4)
    acks.settled(3)
    acks.settled(4)
    acks.flush(final=True)
    assert broker.unacked == {1, 2}


def test_a_transport_without_multiple_acks_gets_one_per_delivery():
    broker = Broker()
    acks = Acks(broker, most_held=100, longest_held=60.0, multiple=False)
    for tag in (1, 2, 3):
        broker.deliver(acks, tag)
    acks.settled(2)
    acks.settled(1)
    acks.flush()
    assert broker.frames == [(1, False), (2, False)]


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    count=st.integers(1, 60),
    most_held=st.integers(1, 20),
    data=st.data(),
)
def test_any_settling_order_acks_each_delivery_exactly_once(count, most_held, data):
    broker, acks = delivered(count, most_held=most_held)
    order = data.draw(st.permutations(range(1, count + 1)))
    flushes = data.draw(st.lists(st.booleans(), min_size=count, max_size=count))
    settled = set()
    for tag, flush in zip(order, flushes, strict=True):
        acks.settled(tag)
        settled.add(tag)
        if flush:
            acks.flush()
            # never early: what the broker no longer holds was settled
            assert set(range(1, count + 1)) - broker.unacked <= settled
    acks.flush(final=True)
    assert broker.unacked == set()
    assert acks.held() == 0


def test_two_lanes_settling_interleaved_batches_take_few_frames():
    """Lanes finish out of arrival order; once both committed, one frame covers both."""
    broker, acks = delivered(1000, most_held=250)
    for start in range(1, 1001, 200):
        for lane in (0, 1):  # each lane commits its half of the next 200 deliveries
            for tag in range(start + lane, start + 200, 2):
                acks.settled(tag)
            acks.flush()
    assert broker.unacked == set()
    assert len(broker.frames) <= 10


class CountingChannel:
    def __init__(self) -> None:
        self.acks = 0

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.acks += 1


def test_memory_stays_bounded_while_one_delivery_is_stuck_for_ever():
    """A lane blocked for hours while the others go on: nothing may grow per message."""
    channel = CountingChannel()
    acks = Acks(channel, most_held=250, longest_held=60.0)
    acks.received(1)  # never settled
    tracemalloc.start()
    for start in range(2, 200_002, 500):
        for tag in range(start, start + 500):
            acks.received(tag)
        for tag in range(start, start + 500):
            acks.settled(tag)
        acks.flush()
    _size, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert acks.held() < 250
    assert channel.acks == 200_000  # each acked alone, behind the stuck one
    assert peak < 512 * 1024
