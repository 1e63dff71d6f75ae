"""The whole pipeline on real RabbitMQ and PostgreSQL, with stock oslo.messaging at both ends."""

import json
import threading

import kombu
import oslo_messaging
import pytest
from oslo_config import cfg

from tests import factories
from tests.conftest import RABBIT_URL, make_conf, require
from tests.running import Running
from tests.waiting import wait_for
from tracker.bus import amqp
from tracker.bus.consumer import ConfigurationError, Worker
from tracker.client.view import CapacityView
from tracker.db import migration
from tracker.db.api import NodeInventory, Store
from tracker.db.engine import Database

pytestmark = pytest.mark.functional
SECRET = "gAAAAABsecret-token-never-logged"
# oslo's notifier declares these on each exchange it publishes to
NOVA_DEFAULT_QUEUES = (
    "versioned_notifications.info",
    "versioned_notifications.error",
    "notifications.info",
    "notifications.error",
)


def _conf(url, names, **extra):
    return make_conf(
        url,
        DEFAULT={"transport_url": RABBIT_URL, "host": "tracker-test"},
        nova_notifications={
            "exchange": names["nova"],
            "queue": names["queue"],
            "dead_letter_queue": names["dlq"],
            **extra,
        },
        capacity_notifications={"exchange": names["tracker"], "relay_interval": 0.1},
        worker={"shutdown_timeout": 10.0},
    )


def _delete_entities(names):
    with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
        channel = connection.channel()
        for queue in (names["queue"], names["dlq"], names["scheduler"], *NOVA_DEFAULT_QUEUES):
            channel.queue_delete(queue)
        for exchange in (names["nova"], names["tracker"]):
            channel.exchange_delete(exchange)


def _nova_compute_notifier(names, tmp_path):
    """Nova's side: the control exchange comes from its config file, as in nova.conf."""
    path = tmp_path / "nova.conf"
    path.write_text(f"[DEFAULT]\ncontrol_exchange = {names['nova']}\n")
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(path)])
    transport = oslo_messaging.get_notification_transport(conf, url=RABBIT_URL)
    notifier = oslo_messaging.Notifier(
        transport, publisher_id="nova-compute:cmp1", driver="messagingv2", topics=["versioned_notifications"]
    )
    return transport, notifier


class RecordingView(CapacityView):
    """The scheduler-side view, also noting who sent what."""

    def __init__(self):
        super().__init__()
        self.senders = []

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.senders.append((publisher_id, event_type))
        super().info(ctxt, publisher_id, event_type, payload, metadata)


def _listener(names, endpoint):
    """A scheduler's listener; its pool gives it a queue of its own (queue names are per vhost)."""
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=RABBIT_URL)
    targets = [oslo_messaging.Target(exchange=names["tracker"], topic="capacity_notifications")]
    return oslo_messaging.get_notification_listener(
        transport, targets, [endpoint], executor="threading", pool=names["scheduler"]
    )


def test_create_and_delete_flow_from_nova_to_the_scheduler(postgresql_url, names, caplog, tmp_path):
    require("rabbitmq")
    conf = _conf(postgresql_url, names)
    view = RecordingView()
    listener = _listener(names, view)
    listener.start()
    try:
        with Running(conf) as running:
            running.store.set_node(
                "cmp1", "cmp1.example.org", NodeInventory(vcpus=16, memory_mb=32768, local_gb=400)
            )
            transport, notifier = _nova_compute_notifier(names, tmp_path)
            context = {"auth_token": SECRET, "user_id": "fake", "project_id": "p1"}
            flavor = factories.flavor_payload(vcpus=4, memory_mb=4096, root_gb=40, ephemeral_gb=0, swap=1024)
            payload = factories.instance_payload("11111111-2222-3333-4444-555555555555", flavor=flavor)
            notifier.info(context, "instance.create.end", payload)
            wait_for(lambda: running.worker.metrics["applied"] == 1, 20.0)

            with running.db.engine.connect() as connection:
                row = connection.exec_driver_sql(
                    "SELECT vcpus_used, memory_mb_used, local_gb_used, running_vms FROM compute_nodes"
                ).one()
                assert tuple(row) == (4, 4096, 41, 1)
                allocation = connection.exec_driver_sql("SELECT role, vcpus FROM allocations").one()
                assert tuple(allocation) == ("instance", 4)

            deleted = factories.instance_payload(
                "11111111-2222-3333-4444-555555555555", state="deleted", flavor=flavor
            )
            notifier.info(context, "instance.delete.end", deleted)
            wait_for(lambda: running.worker.metrics["applied"] == 2, 20.0)
            wait_for(lambda: (view.get("cmp1", "cmp1.example.org") or {}).get("generation") == 3, 20.0)
            transport.cleanup()
    finally:
        listener.stop()
        listener.wait()
        _delete_entities(names)

    assert set(view.senders) == {("tracker:tracker-test", "capacity.update")}
    last = view.get("cmp1", "cmp1.example.org")
    assert last["resources"]["vcpus"] == {
        "total": 16,
        "reserved": 0,
        "allocation_ratio": 4.0,
        "used": 0,
        "capacity": 64,
        "free": 64,
    }
    assert last["running_vms"] == 0
    assert view.dropped == 0  # published in generation order
    assert SECRET not in caplog.text


def test_poison_is_dead_lettered_without_context_and_consuming_goes_on(postgresql_url, names, tmp_path):
    require("rabbitmq")
    conf = _conf(postgresql_url, names)
    try:
        with Running(conf) as running:
            transport, notifier = _nova_compute_notifier(names, tmp_path)
            notifier.info({"auth_token": SECRET}, "instance.create.end", {"nova_object.data": {"uuid": "x"}})
            notifier.info({"auth_token": SECRET}, "instance.create.end", factories.instance_payload("u-ok"))
            wait_for(
                lambda: (
                    running.worker.metrics["dead_lettered"] == 1 and running.worker.metrics["applied"] == 1
                )
            )
            transport.cleanup()
        with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
            dead = amqp.dead_letter_queue(conf)(connection.default_channel).get(no_ack=True)
        assert dead is not None
        assert dead.headers["x-tracker-reason"].startswith("InvalidPayload")
        assert dead.headers["x-original-routing-key"] == "versioned_notifications.info"
        body = json.loads(json.loads(dead.body)["oslo.message"])  # the envelope is kept, context removed
        assert body["event_type"] == "instance.create.end"
        assert SECRET not in str(dead.body)
        assert not [key for key in body if key.startswith("_context_")]
    finally:
        _delete_entities(names)


def test_exchange_declared_differently_is_a_clear_configuration_error(postgresql_url, names):
    require("rabbitmq")
    with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
        kombu.Exchange(names["nova"], type="topic", durable=True)(connection.default_channel).declare()
    conf = _conf(postgresql_url, names)
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    stopping = threading.Event()
    try:
        with pytest.raises(ConfigurationError, match="amqp_durable_queues"):
            Worker(conf, Store(db, conf, stopping), stopping).run()
    finally:
        db.dispose()
        _delete_entities(names)
