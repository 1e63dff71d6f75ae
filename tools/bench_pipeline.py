"""Throughput of the tracker worker, as a ratio to a no-op kombu consumer, same run.

    .venv/bin/python tools/bench_pipeline.py [--instances 100] [--database postgresql|sqlite]

Both consume the same pre-published simulated Nova feed from the local
RabbitMQ; the baseline acks each message and does nothing else. Absolute
rates depend on the machine; the ratio is the figure to compare across runs.
"""

import argparse
import json
import random
import sys
import threading
import time
import uuid

import kombu
from cloudsim import Cloud
from scratch_db import scratch_database

from tracker import conf as tracker_conf
from tracker.bus import amqp
from tracker.bus.consumer import Worker
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database

RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"


def feed(instances: int) -> list[dict]:
    return Cloud(42, hosts=10).run(instances, random.Random(42))


def publish(
    connection: kombu.Connection, queue: kombu.Queue, exchange: kombu.Exchange, messages: list[dict]
) -> None:
    queue(connection.default_channel).declare()
    producer = kombu.Producer(connection.default_channel)
    for message in messages:
        producer.publish(
            json.dumps(message["body"]),
            exchange=exchange,
            routing_key=message["routing_key"],
            content_type="application/json",
        )


def baseline(connection: kombu.Connection, messages: list[dict]) -> float:
    """No-op kombu consumer, prefetch 500, one ack per message."""
    exchange = kombu.Exchange(f"bench-{uuid.uuid4().hex[:8]}", type="topic", durable=False)
    queue = kombu.Queue(f"bench-{uuid.uuid4().hex[:8]}", exchange, routing_key="#", auto_delete=True)
    publish(connection, queue, exchange, messages)
    received = 0

    def on_message(message: kombu.Message) -> None:
        nonlocal received
        received += 1
        message.ack()

    channel = connection.channel()
    consumer = kombu.Consumer(channel, queues=[queue], on_message=on_message, prefetch_count=500)
    start = time.perf_counter()
    with consumer:
        while received < len(messages):
            connection.drain_events(timeout=5)
    elapsed = time.perf_counter() - start
    exchange(connection.default_channel).delete()
    return len(messages) / elapsed


def tracker_rate(connection: kombu.Connection, messages: list[dict], url: str, lanes: int) -> float:
    suffix = uuid.uuid4().hex[:8]
    conf = tracker_conf.load([])
    conf.set_override("connection", url, group="database")
    conf.set_override("exchange", f"nova-bench-{suffix}", group="nova_notifications")
    conf.set_override("queue", f"tracker-bench-{suffix}", group="nova_notifications")
    conf.set_override("exchange", f"tracker-bench-{suffix}", group="capacity_notifications")
    conf.set_override("lanes", lanes, group="worker")
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    publish(connection, amqp.notification_queue(conf), amqp.nova_exchange(conf), messages)
    stopping = threading.Event()
    worker = Worker(conf, Store(db, conf, stopping), stopping)
    thread = threading.Thread(target=worker.run, daemon=True)
    start = time.perf_counter()
    thread.start()
    while worker.metrics["received"] < len(messages) or not worker.idle():
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    stopping.set()
    thread.join(30)
    channel = connection.default_channel
    channel.queue_delete(conf.nova_notifications.queue)
    channel.queue_delete(conf.nova_notifications.dead_letter_queue)
    db.dispose()
    return len(messages) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--lanes", type=int, default=4)
    args = parser.parse_args()
    messages = feed(args.instances)
    with kombu.Connection(amqp.broker_urls(RABBIT)[0]) as connection:
        base = baseline(connection, messages)
        with scratch_database(args.database) as url:
            rate = tracker_rate(connection, messages, url, args.lanes)
    result = {
        "messages": len(messages),
        "database": args.database,
        "lanes": args.lanes,
        "baseline_msgs_per_s": round(base),
        "tracker_msgs_per_s": round(rate),
        "ratio": round(rate / base, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
