"""The worker loop on kombu's in-process ``memory://`` transport."""

import bz2
import datetime
import json
import logging
import os
import threading
import time
import types
import uuid

import kombu
import pytest
from amqp.exceptions import MessageNacked

from tests import factories
from tests.conftest import make_conf
from tests.running import Running
from tests.waiting import wait_for
from tracker import health
from tracker.bus import amqp
from tracker.bus.acks import Acks
from tracker.bus.deadletter import DeadLetters, Letter
from tracker.bus.delivery import Delivery, Session


@pytest.fixture
def memory_conf(tmp_path):
    suffix = uuid.uuid4().hex[:8]
    return make_conf(
        f"sqlite:///{tmp_path}/worker.sqlite",
        DEFAULT={"transport_url": "memory://"},
        nova_notifications={
            "exchange": f"nova-{suffix}",
            "queue": f"q-{suffix}",
            "dead_letter_queue": f"dlq-{suffix}",
        },
        capacity_notifications={"exchange": f"tracker-{suffix}", "relay_interval": 0.05},
        worker={"shutdown_timeout": 5.0, "health_file": f"{tmp_path}/health.json"},
    )


@pytest.fixture
def running_worker(memory_conf):
    # a subscriber queue on the capacity exchange, declared before anything is published
    connection = kombu.Connection("memory://")
    capacity = kombu.Queue(
        "subscriber", amqp.capacity_exchange(memory_conf), routing_key="capacity_notifications.info"
    )
    capacity(connection.default_channel).declare()
    with Running(memory_conf) as running:
        yield running.worker, connection, capacity


def _now():
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _publish(connection, conf, body, routing_key="versioned_notifications.info"):
    producer = kombu.Producer(connection.default_channel)
    producer.publish(
        json.dumps(body),
        exchange=amqp.nova_exchange(conf),
        routing_key=routing_key,
        content_type="application/json",
    )


def test_worker_applies_acks_dead_letters_and_announces(running_worker, memory_conf):
    worker, connection, capacity = running_worker
    create = factories.message("instance.create.end", factories.instance_payload("u1"))
    _publish(connection, memory_conf, factories.envelope(create))
    _publish(connection, memory_conf, {"oslo.version": "2.0", "oslo.message": "{broken"})
    _publish(connection, memory_conf, factories.envelope(factories.message("service.update", {})))
    wait_for(
        lambda: worker.metrics["applied"] + worker.metrics["dead_lettered"] + worker.metrics["ignored"] == 3
    )

    views = worker._store.node_views()
    assert [(v["host"], v["running_vms"], v["resources"]["vcpus"]["used"]) for v in views] == [("cmp1", 1, 2)]

    dead = amqp.dead_letter_queue(memory_conf)(connection.default_channel).get()
    assert "oslo.message is not JSON" in dead.headers["x-tracker-reason"]

    wait_for(lambda: worker.relay.published >= 1, 10.0)
    announced = capacity(connection.default_channel).get()
    inner = json.loads(json.loads(announced.body)["oslo.message"])
    assert inner["event_type"] == "capacity.update"
    assert inner["payload"]["generation"] == 1
    assert inner["payload"]["resources"]["vcpus"]["used"] == 2


def test_redelivered_message_is_acked_without_double_counting(running_worker, memory_conf):
    worker, connection, _ = running_worker
    body = factories.envelope(factories.message("instance.create.end", factories.instance_payload("u1")))
    _publish(connection, memory_conf, body)
    _publish(connection, memory_conf, body)
    wait_for(lambda: worker.metrics["applied"] + worker.metrics["duplicate"] == 2, 10.0)
    assert worker.metrics["duplicate"] == 1
    assert worker._store.node_views()[0]["running_vms"] == 1


def test_error_routing_key_is_consumed_too(running_worker, memory_conf):
    worker, connection, _ = running_worker
    error = factories.message(
        "instance.create.error",
        factories.instance_payload("u1", host=None, node=None, state="error"),
        priority="ERROR",
    )
    _publish(connection, memory_conf, factories.envelope(error), routing_key="versioned_notifications.error")
    wait_for(lambda: worker.metrics["received"] == 1, 10.0)
    wait_for(lambda: worker.metrics["unchanged"] == 1, 10.0)


def test_odd_messages_are_set_aside_and_the_worker_keeps_consuming(running_worker, memory_conf):
    worker, connection, _ = running_worker
    producer = kombu.Producer(connection.default_channel)
    exchange = amqp.nova_exchange(memory_conf)
    late = factories.message("instance.create.end", factories.instance_payload("u-odd"))
    late["timestamp"] = "0001-01-01T00:00:00+01:00"  # overflows when converted to UTC
    surrogate = factories.message("instance.create.end", factories.instance_payload("u-sur", host="\udc80"))
    bodies = [
        "[" * 5000,  # nesting deeper than the JSON parser's recursion limit
        json.dumps(factories.envelope(late)),
        json.dumps(factories.envelope(surrogate)),
    ]
    for body in bodies:
        producer.publish(body, exchange=exchange, routing_key="versioned_notifications.info")
    producer.publish(
        "x",
        exchange=exchange,
        routing_key="versioned_notifications.info",
        headers={"compression": "application/x-unknown"},
    )
    _publish(
        connection,
        memory_conf,
        factories.envelope(factories.message("instance.create.end", factories.instance_payload("u-good"))),
    )
    wait_for(lambda: worker.metrics["applied"] + worker.metrics["dead_lettered"] == 5, 10.0)
    assert (worker.metrics["applied"], worker.metrics["dead_lettered"]) == (1, 4)
    assert [(v["host"], v["running_vms"]) for v in worker._store.node_views()] == [("cmp1", 1)]


def test_a_consuming_worker_keeps_its_health_record_fresh(running_worker, memory_conf):
    path = memory_conf.worker.health_file
    wait_for(lambda: os.path.exists(path), 10.0)
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    assert health.check(path, 10, now)[0]


def test_a_refused_dead_letter_pauses_consumption_and_resumes_without_a_reconnect(
    monkeypatch, memory_conf, caplog
):
    caplog.set_level(logging.INFO)
    """Issue 7: a refusing dead-letter queue used to stop the worker for good."""
    full = threading.Event()
    full.set()
    real = DeadLetters._publish

    def refuse_while_full(self, letter):
        if full.is_set():
            raise MessageNacked("dead-letter queue full")
        return real(self, letter)

    monkeypatch.setattr(DeadLetters, "_publish", refuse_while_full)
    memory_conf.set_override("reconnect_initial_backoff", 0.05, group="worker")
    memory_conf.set_override("reconnect_max_backoff", 0.2, group="worker")
    with Running(memory_conf) as running:
        worker = running.worker
        connection = kombu.Connection("memory://")
        _publish(connection, memory_conf, {"not": "a notification"})
        wait_for(lambda: "refuses messages" in caplog.text, 10.0)
        wait_for(
            lambda: "dead-letter queue" in health.check(memory_conf.worker.health_file, 60, _now())[1], 10.0
        )
        assert not health.check(memory_conf.worker.health_file, 60, _now())[0]
        good = factories.message("instance.create.end", factories.instance_payload("u1"))
        _publish(connection, memory_conf, factories.envelope(good))
        time.sleep(0.5)
        assert worker.metrics["received"] == 1  # paused: nothing new is taken meanwhile
        full.clear()  # the operator makes room: retried on the same connection, set aside
        wait_for(lambda: worker.metrics["dead_lettered"] == 1, 10.0)
        wait_for(lambda: worker.metrics["applied"] == 1, 10.0)
        assert worker.metrics["received"] == 2  # nothing redelivered: no reconnect was needed
        # one line per change of state, not one per retry or per message
        states = [r.getMessage() for r in caplog.records if "dead-letter queue" in r.getMessage()]
        assert len(states) == 2, states
        assert "refuses messages" in states[0] and "accepts messages again" in states[1]
        wait_for(lambda: health.check(memory_conf.worker.health_file, 60, _now())[0], 10.0)


def test_a_compressed_body_is_refused_as_it_came_never_inflated(running_worker, memory_conf):
    """A few hundred bytes of bz2 once inflated to gigabytes inside kombu."""
    worker, connection, _ = running_worker
    bomb = bz2.compress(b"\0" * 20_000_000)  # about 50 bytes that would inflate to 20 MB
    kombu.Producer(connection.default_channel).publish(
        bomb,
        exchange=amqp.nova_exchange(memory_conf),
        routing_key="versioned_notifications.info",
        headers={"compression": "application/x-bz2"},
    )
    wait_for(lambda: worker.metrics["dead_lettered"] == 1, 10.0)
    letter = amqp.dead_letter_queue(memory_conf)(connection.default_channel).get()
    assert "compressed bodies are refused" in letter.headers["x-tracker-reason"]
    assert letter.headers["x-tracker-withheld"] is True
    assert letter.headers["x-original-bytes"] == len(bomb)


def test_a_refusal_ends_once_no_letter_waits(monkeypatch, memory_conf):
    """Its letter went back to RabbitMQ with its session: nothing may stay paused for it."""
    memory_conf.set_override("reconnect_initial_backoff", 0.05, group="worker")
    memory_conf.set_override("reconnect_max_backoff", 0.1, group="worker")

    def refuse(self, letter):
        raise MessageNacked("dead-letter queue full")

    monkeypatch.setattr(DeadLetters, "_publish", refuse)
    stopping = threading.Event()
    dead_letters = DeadLetters(memory_conf, stopping, lambda delivery: None)
    thread = threading.Thread(target=dead_letters.run, daemon=True)
    thread.start()
    session = Session(Acks(None, most_held=1, longest_held=0.0))
    message = types.SimpleNamespace(body=b"{}", delivery_info={"routing_key": "x.info"})
    dead_letters.submit(Letter(Delivery(session, message), "poison"))
    wait_for(lambda: dead_letters.refusing_for() is not None, 5.0)
    session.close()  # the connection that delivered it is gone
    wait_for(lambda: dead_letters.refusing_for() is None, 5.0)
    assert dead_letters.pending() == 0
    stopping.set()
    dead_letters.stop()
    thread.join(5)
