"""Real Nova's captured bodies over real RabbitMQ into PostgreSQL, and on both servers.

Each scenario's messages are published as Nova's computes published them
(the captured body on its routing key), its errors first, as a consumer of a
second queue may see them; after each scenario every node must hold what
Placement held.
"""

import threading

import kombu
import pytest

from tests.conftest import RABBIT_URL, make_conf, require
from tests.functional.test_worker_rabbitmq import _conf, _delete_entities
from tests.steps import OLD, hold, render
from tests.unit.test_lifecycles import FAILURE_SCENARIOS
from tests.unit.test_lifecycles import _register as register_lifecycle_nodes
from tests.unit.test_lifecycles import _usage as lifecycle_usage
from tests.unit.test_nova_captures import _disorder, _expected, _feed, _register, _replay, _truths, _usage
from tests.waiting import wait_for
from tracker.bus import amqp, decide
from tracker.bus.consumer import Worker
from tracker.db import apply as applying
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database
from tracker.db.nodes import InventoryDefaults

pytestmark = pytest.mark.functional


def _publish(lines, exchange):
    with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
        producer = connection.Producer(exchange=kombu.Exchange(exchange, type="topic", durable=False))
        for line in lines:
            producer.publish(
                line["body"].encode(),
                routing_key=line["routing_key"],
                content_type="application/json",
                content_encoding="utf-8",
            )


@pytest.mark.parametrize("fmt", ["versioned", "legacy"])
def test_captured_nova_matches_placement_over_rabbitmq(postgresql_url, names, fmt):
    require("rabbitmq")
    conf = _conf(postgresql_url, names, notification_format="unversioned" if fmt == "legacy" else "versioned")
    conf.set_override("disk_rounding", "placement", group="accounting")
    stopping = threading.Event()
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    store = Store(db, conf, stopping)
    _register(store)
    worker = Worker(conf, store, stopping)
    thread = threading.Thread(target=worker.run, daemon=True)
    feed = _feed(fmt)
    try:
        thread.start()
        wait_for(worker.consuming.is_set, 20)
        published = 0
        for truth in _truths():
            lines = [line for line in feed if line["scenario"] == truth["scenario"]]
            errors_first = sorted(lines, key=lambda line: not line["routing_key"].endswith(".error"))
            _publish(errors_first, names["nova"])
            published += len(lines)
            wait_for(lambda count=published: worker.metrics["received"] >= count and worker.idle(), 60)
            assert _usage(store) == _expected(truth), f"after {truth['scenario']} ({fmt})"
        assert worker.metrics["dead_lettered"] == 0
        assert store.audit() == []
    finally:
        stopping.set()
        thread.join(60)
        db.dispose()
        _delete_entities(names)


@pytest.mark.parametrize("fmt", ["versioned", "legacy"])
def test_captured_nova_disordered_on_postgresql_and_mariadb(server_url, fmt):
    """The parking and routing tables under real locking, with disorder and duplicates."""
    conf = make_conf(server_url, accounting={"disk_rounding": "placement"})
    db = Database.from_conf(conf)
    try:
        migration.upgrade(db.engine)
        _replay(Store(db, conf), fmt, _disorder)
    finally:
        db.dispose()


def test_a_failure_parked_while_its_request_is_applied_elsewhere_is_not_lost(server_url):
    """Two workers: one parks a failure in a transaction not yet committed while the other
    applies the first events of its request. The second waits on the request's lock, then
    adopts the failure; without the lock each would miss the other's write."""
    conf = make_conf(server_url)
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    store = Store(db, conf)
    try:
        register_lifecycle_nodes(store)
        steps = FAILURE_SCENARIOS["resize_fails_on_source_frees_the_destination"]
        events = [
            decide.decide(render(step, "versioned", "inst-1", n), 1 << 20).event
            for n, step in enumerate(steps, 1)
        ]
        defaults = InventoryDefaults.from_conf(conf)
        applied = []
        with db.engine.connect() as parking:
            transaction = parking.begin()
            assert (
                applying.apply_batch(
                    parking, events[-1:], 64, defaults, quota_limits={}, default_zone="nova"
                )[0].status
                == applying.PARKED
            )
            other = threading.Thread(target=lambda: applied.extend(store.apply_batch(events[:-1])))
            other.start()
            other.join(1.0)
            assert other.is_alive(), "the request's events must wait for the parking transaction"
            transaction.commit()
        other.join(30)
        assert len(applied) == len(events) - 1 and not other.is_alive()
        assert lifecycle_usage(store) == {"A": hold(OLD, 1)}
        assert store.audit() == []
    finally:
        db.dispose()
