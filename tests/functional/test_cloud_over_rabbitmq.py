"""200 simulated instances through every lifecycle, over real RabbitMQ into PostgreSQL.

Two workers (two processes' worth: separate connection pools, lanes and
consumers) share the queue, so one instance's events are applied by both, in
whatever order the lanes reach them; the result must equal the oracle.
"""

import random
import threading

import kombu
import pytest
from cloudsim import Cloud, inner
from cloudsim.publish import publish

from tests.conftest import RABBIT_URL, require
from tests.functional.test_worker_rabbitmq import _conf, _delete_entities
from tests.oracle import differences, register
from tests.running import Running
from tests.waiting import wait_for
from tracker.bus import amqp
from tracker.bus.consumer import Worker
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database
from tracker.events import catalogue

pytestmark = pytest.mark.functional

EVERY_LIFECYCLE = {
    "create.end",
    "create.error",
    "delete.end",
    "soft_delete.end",
    "restore.end",
    "shelve.end",
    "shelve_offload.end",
    "unshelve.end",
    "resize_prep.end",
    "resize.error",
    "resize.end",
    "resize_finish.end",
    "resize_confirm.end",
    "resize_revert.end",
    "live_migration_pre.start",
    "live_migration_post_dest.end",
    "live_migration_post.end",
    "live_migration_rollback.end",
    "live_migration_rollback_dest.end",
    "evacuate",
    "rebuild_scheduled",
    "rebuild.end",
    "rebuild.error",
    "power_off.end",
    "exists",
    "update",
}
VERSIONED_ONLY = {"evacuate"}


def _queue_depth(name):
    with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
        return connection.default_channel.queue_declare(name, passive=True).message_count


def _action(event_type):
    return catalogue.versioned_action(event_type) or catalogue.legacy_action(event_type)


@pytest.mark.parametrize("fmt", ["versioned", "legacy"])
def test_two_hundred_instances_match_the_oracle(postgresql_url, names, fmt):
    require("rabbitmq")
    cloud = Cloud(200, hosts=10, fmt=fmt)
    messages = cloud.run(200, random.Random(200))
    seen = {_action(inner(m)["event_type"]) for m in messages}
    expected = EVERY_LIFECYCLE - (VERSIONED_ONLY if fmt == "legacy" else set())
    assert expected <= seen, expected - seen

    conf = _conf(postgresql_url, names, notification_format="unversioned" if fmt == "legacy" else "versioned")
    stopping = threading.Event()
    databases = [Database.from_conf(conf) for _ in range(2)]
    migration.upgrade(databases[0].engine)
    stores = [Store(db, conf, stopping) for db in databases]
    register(stores[0], cloud)
    workers = [Worker(conf, store, stopping) for store in stores]
    threads = [threading.Thread(target=worker.run, daemon=True) for worker in workers]
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: all(w.consuming.is_set() for w in workers), 20)
        publish(messages, RABBIT_URL, exchange=names["nova"])

        def consumed():
            # >=: a reconnection redelivers what was unacked, and that is fine
            received = sum(w.metrics["received"] for w in workers) >= len(messages)
            idle = all(w.idle() for w in workers)
            return received and idle and _queue_depth(conf.nova_notifications.queue) == 0

        wait_for(consumed, 300)
        stopping.set()
        for thread in threads:
            thread.join(60)
        assert [w.metrics["dead_lettered"] for w in workers] == [0, 0]
        assert all(w.metrics["received"] > 0 for w in workers), "both workers should have taken a share"
        assert differences(stores[0], cloud) == []
        assert stores[0].audit() == []
    finally:
        stopping.set()
        for db in databases:
            db.dispose()
        _delete_entities(names)


def test_a_backlog_is_acked_in_few_frames_exactly_once(postgresql_url, names, caplog):
    """Published first, then consumed with the real prefetch by two lanes that finish out
    of order: acks covering many deliveries at once must never ack one twice (RabbitMQ
    would close the channel and redeliver) nor leave one unacked."""
    require("rabbitmq")
    cloud = Cloud(300, hosts=20)
    messages = cloud.run(300, random.Random(7))
    assert len(messages) > 2 * 1000  # more than the prefetch window
    conf = _conf(postgresql_url, names)
    conf.set_override("lanes", 2, group="worker")
    with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
        amqp.notification_queue(conf)(connection.default_channel).declare()
    try:
        publish(messages, RABBIT_URL, exchange=names["nova"])
        wait_for(lambda: _queue_depth(conf.nova_notifications.queue) == len(messages), 20)
        running = Running(conf)
        register(running.store, cloud)
        with running:
            wait_for(
                lambda: running.worker.metrics["received"] >= len(messages) and running.worker.idle(), 300
            )
        assert running.worker.metrics["received"] == len(messages)  # nothing redelivered
        assert _queue_depth(conf.nova_notifications.queue) == 0  # nothing left unacked
        assert "connection lost" not in caplog.text
        assert differences(running.store, cloud) == []
    finally:
        _delete_entities(names)
