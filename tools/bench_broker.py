"""The benchmark's side of RabbitMQ: entities of its own, the feed published, children started.

Every run declares its own exchange and queues (random suffix) and deletes
them afterwards, so runs never see each other's messages, nor those of tests
running on the same broker. The whole feed is published before the consumer
starts, and publishing is complete only once the queue holds every message;
or (bench_latency) at a steady rate, or (bench_soak) in chunks as the consumer
makes room, while it consumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import kombu
from bench_consumers import BROKER

TOPICS = ("versioned_notifications.info", "versioned_notifications.error")
TOOLS = os.path.dirname(os.path.abspath(__file__))


@dataclasses.dataclass(frozen=True)
class Names:
    """Entities of one run."""

    nova: str
    queue: str
    dead_letter: str
    capacity: str
    subscriber: str

    @classmethod
    def fresh(cls) -> Names:
        suffix = uuid.uuid4().hex[:8]
        return cls(
            f"bench-nova-{suffix}",
            f"bench-queue-{suffix}",
            f"bench-dlq-{suffix}",
            f"bench-capacity-{suffix}",
            f"bench-scheduler-{suffix}",
        )


def nova_exchange(name: str) -> kombu.Exchange:
    """As oslo.messaging and the tracker declare Nova's exchange (amqp_durable_queues = false)."""
    return kombu.Exchange(name, type="topic", durable=False, auto_delete=False)


def declare_queue(connection: kombu.Connection, names: Names, durable: bool) -> None:
    """The consumer's queue, bound to Nova's two routing keys; ``durable`` as its consumer declares it."""
    exchange = nova_exchange(names.nova)
    bindings = [kombu.binding(exchange, routing_key=key) for key in TOPICS]
    kombu.Queue(names.queue, bindings=bindings, durable=durable, auto_delete=False)(
        connection.default_channel
    ).declare()


def queue_depth(connection: kombu.Connection, name: str) -> int:
    return int(connection.default_channel.queue_declare(name, passive=True).message_count)


def publish_all(connection: kombu.Connection, names: Names, messages: list[tuple[str, str]]) -> float:
    """Publish as fast as the broker takes it; returns once the queue holds every message."""
    producer = kombu.Producer(connection.default_channel)
    exchange = nova_exchange(names.nova)
    start = time.perf_counter()
    for routing_key, body in messages:
        _publish_json(producer, exchange, routing_key, body)
    while (depth := queue_depth(connection, names.queue)) < len(messages):
        time.sleep(0.05)
    if depth != len(messages):
        raise RuntimeError(f"queue {names.queue} holds {depth} messages, {len(messages)} published")
    return time.perf_counter() - start


def publish_bounded(
    connection: kombu.Connection,
    names: Names,
    messages: Iterable[tuple[str, str]],
    max_depth: int,
    chunk: int = 1000,
) -> None:
    """Publish while the consumer consumes, ``chunk`` messages at a time, each chunk once the
    queue holds no more than ``max_depth - chunk`` ready messages: however long the feed,
    RabbitMQ holds about ``max_depth`` of it at most."""
    producer = kombu.Producer(connection.default_channel)
    exchange = nova_exchange(names.nova)
    remaining = iter(messages)
    while batch := list(itertools.islice(remaining, min(chunk, max_depth))):
        while queue_depth(connection, names.queue) > max_depth - len(batch):
            time.sleep(0.05)
        for routing_key, body in batch:
            _publish_json(producer, exchange, routing_key, body)


def publish_paced(
    connection: kombu.Connection,
    names: Names,
    messages: list[tuple[str, str]],
    rate: float,
    sent: Callable[[str, float], None],
) -> float:
    """Publish at ``rate`` messages/s on an absolute schedule (a late message does not delay
    the next ones); ``sent(body, time.monotonic())`` just before each publish. Returns seconds."""
    producer = kombu.Producer(connection.default_channel)
    exchange = nova_exchange(names.nova)
    start = time.monotonic()
    for number, (routing_key, body) in enumerate(messages):
        delay = start + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent(body, time.monotonic())
        _publish_json(producer, exchange, routing_key, body)
    return time.monotonic() - start


def _publish_json(producer: kombu.Producer, exchange: kombu.Exchange, routing_key: str, body: str) -> None:
    """As Nova's notifier publishes: a JSON text body on its routing key."""
    producer.publish(
        body,
        exchange=exchange,
        routing_key=routing_key,
        content_type="application/json",
        content_encoding="utf-8",
    )


def delete_entities(names: Names) -> None:
    with kombu.Connection(BROKER) as connection:
        channel = connection.channel()
        for queue in (names.queue, names.dead_letter, names.subscriber):
            channel.queue_delete(queue)
        for exchange in (names.nova, names.capacity):
            channel.exchange_delete(exchange)


@contextlib.contextmanager
def entities() -> Iterator[Names]:
    names = Names.fresh()
    try:
        yield names
    finally:
        delete_entities(names)


def logged_warnings(log: IO[str]) -> list[str]:
    """What the children logged at WARNING and above, for the report."""
    log.seek(0)
    return [line.rstrip() for line in log if line.startswith(("WARNING", "ERROR", "CRITICAL"))]


class Child:
    """A bench_consumers process: its JSON lines on stdout, its log kept for the report."""

    def __init__(self, spec: dict[str, Any], log: IO[str]) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([TOOLS, os.environ.get("PYTHONPATH", "")]))
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter, our module, our spec
            [sys.executable, "-m", "bench_consumers", json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            cwd=TOOLS,
        )

    def expect(self, event: str) -> dict[str, Any]:
        """The next line, which must be ``event``; the child's failure otherwise."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(30)
            raise RuntimeError(f"consumer process exited with {self.process.returncode} before {event!r}")
        record: dict[str, Any] = json.loads(line)
        if record.get("event") != event:
            raise RuntimeError(f"consumer process said {record}, expected {event!r}")
        return record

    def finish(self, timeout: float) -> dict[str, Any]:
        try:
            record = self.expect("done")
            self.process.wait(timeout)
            return record
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
