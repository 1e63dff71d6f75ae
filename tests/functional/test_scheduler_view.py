"""Issue 10: a scheduler starts cold, trusts every update and places with it, over real
RabbitMQ and PostgreSQL, with a stock oslo.messaging listener feeding CapacityView."""

import collections
import datetime
import json
import logging
import random
import time

import kombu
import pytest

from tests import factories
from tests.conftest import RABBIT_URL, require
from tests.functional.test_worker_rabbitmq import _conf, _delete_entities, _listener
from tests.running import Running
from tests.waiting import wait_for
from tracker.bus import amqp
from tracker.bus.publisher import CapacityPublisher
from tracker.client import snapshot
from tracker.client.view import CapacityView, Request
from tracker.cmd import status
from tracker.db.api import NodeInventory

pytestmark = pytest.mark.functional
GIB = 1024
BOOT = Request(vcpus=4, memory_mb=16 * GIB, disk_gb=40)


class Listening:
    """A scheduler: a view fed by its own listener (own pool, own queue)."""

    def __init__(self, names, view=None):
        self.view = CapacityView() if view is None else view
        self.listener = _listener(names, self.view)

    def __enter__(self):
        self.listener.start()
        return self.view

    def __exit__(self, *exc):
        self.listener.stop()
        self.listener.wait()


class Recording(CapacityView):
    def __init__(self):
        super().__init__()
        self.updates = []

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.updates.append(payload)
        super().info(ctxt, publisher_id, event_type, payload, metadata)


@pytest.fixture
def rig(postgresql_url, names):
    require("rabbitmq")
    conf = _conf(postgresql_url, names)
    conf.set_override("announce_interval", 0.0, group="capacity_notifications")
    yield conf
    _delete_entities(names)


def _nova(conf, messages):
    """Publish Nova notifications (inner message dicts) on Nova's exchange, in order."""
    with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
        producer = kombu.Producer(connection.default_channel)
        exchange = amqp.nova_exchange(conf)
        exchange.declare(channel=connection.default_channel)
        for message in messages:
            producer.publish(
                json.dumps(factories.envelope(message)),
                exchange=exchange,
                routing_key="versioned_notifications.info",
                content_type="application/json",
            )


def _create(uuid, host, seconds, vcpus=4, memory_mb=16 * GIB, root_gb=40, deleted=False):
    flavor = factories.flavor_payload(vcpus=vcpus, memory_mb=memory_mb, root_gb=root_gb)
    payload = factories.instance_payload(
        uuid, host=host, node=host, flavor=flavor, state="deleted" if deleted else "active"
    )
    event_type = "instance.delete.end" if deleted else "instance.create.end"
    timestamp = factories.T0 + datetime.timedelta(seconds=seconds)
    return factories.message(event_type, payload, publisher=f"nova-compute:{host}", timestamp=timestamp)


def _register(store, hosts, memory_mb=32 * GIB, vcpus=16):
    for host in hosts:
        store.set_node(host, host, NodeInventory(vcpus=vcpus, memory_mb=memory_mb, local_gb=400))


def _matches_database(view, store):
    """The view holds exactly the database's newest state of every node."""
    stored = {(v["host"], v["nodename"]): v for v in store.node_views()}
    seen = {key: view.get(*key) for key in stored}
    return all(
        seen[key] is not None
        and seen[key]["generation"] == stored[key]["generation"]
        and seen[key]["resources"] == stored[key]["resources"]
        for key in stored
    )


# 1 -------------------------------------------------------------------------------------------


def test_a_cold_view_knows_every_node_within_one_announce_interval_or_at_once_from_a_snapshot(
    rig, names, postgresql_url, tmp_path, capsys
):
    rig.set_override("announce_interval", 3.0, group="capacity_notifications")
    hosts = [f"cmp{i:02d}" for i in range(50)]
    with Running(rig) as running:
        _register(running.store, hosts)
        wait_for(lambda: running.worker.relay.published >= 50)  # announced to nobody yet

        with Listening(names) as view:
            started = time.monotonic()
            wait_for(lambda: len(view) == 50, 10.0)
            assert time.monotonic() - started < 3.0 + 1.5  # one interval, plus delivery
            assert _matches_database(view, running.store)

        config = tmp_path / "tracker.conf"
        config.write_text(f"[database]\nconnection = {postgresql_url}\n")
        capsys.readouterr()
        assert status.main(["--config-file", str(config), "--format", "json"]) == 0
        from_status = CapacityView()
        assert from_status.load(snapshot.from_status(capsys.readouterr().out)) == 50
        assert _matches_database(from_status, running.store)
        from_database = CapacityView()
        assert from_database.load(snapshot.from_database(postgresql_url)) == 50
        assert _matches_database(from_database, running.store)


# 2 -------------------------------------------------------------------------------------------


def test_a_relay_dead_between_commit_and_publish_loses_nothing(rig, names, monkeypatch):
    hosts = [f"cmp{i}" for i in range(10)]

    def dead(self, events, priority):
        raise ConnectionResetError("relay killed between commit and publish")

    with Listening(names, Recording()) as view:
        with monkeypatch.context() as patch:
            patch.setattr(CapacityPublisher, "publish_events", dead)
            with Running(rig) as running:
                _register(running.store, hosts)
                _nova(rig, [_create(f"u-{i}", hosts[i % 10], i, memory_mb=1024) for i in range(40)])
                wait_for(lambda: running.worker.metrics["applied"] == 40)
            with running.db.engine.connect() as connection:
                assert connection.exec_driver_sql("SELECT count(*) FROM capacity_outbox").scalar() > 0
        assert view.updates == []  # nothing went out

        with Running(rig) as running:
            wait_for(lambda: _matches_database(view, running.store), 20.0)
            stored = running.store.node_views()
    assert {v["running_vms"] for v in stored} == {4}


# 3 -------------------------------------------------------------------------------------------


def test_a_burst_of_1000_changes_on_one_node_gives_few_notifications_and_the_last_is_exact(rig, names):
    with Listening(names, Recording()) as view, Running(rig) as running:
        _register(running.store, ["cmp1"], memory_mb=2_000_000, vcpus=2000)
        wait_for(lambda: len(view.updates) == 1)
        burst = [_create(f"u-{i}", "cmp1", i, vcpus=1, memory_mb=512, root_gb=1) for i in range(500)]
        burst += [_create(f"u-{i}", "cmp1", 1000 + i, 1, 512, 1, deleted=True) for i in range(0, 500, 2)]
        burst += [_create(f"v-{i}", "cmp1", 2000 + i, vcpus=1, memory_mb=512, root_gb=1) for i in range(250)]
        _nova(rig, burst)
        wait_for(lambda: running.worker.metrics["applied"] == 1000, 60.0)
        wait_for(lambda: _matches_database(view, running.store), 20.0)
        last = view.updates[-1]
    notifications = len(view.updates) - 1
    assert 1 <= notifications <= 50, notifications
    assert last["running_vms"] == 500
    assert last["resources"]["memory_mb"]["used"] == 500 * 512
    assert [u["generation"] for u in view.updates] == sorted(u["generation"] for u in view.updates)


# 4 -------------------------------------------------------------------------------------------


def test_delivered_out_of_order_the_view_ends_at_the_newest_generation_of_every_node(rig, names):
    updates = [
        factories.capacity_payload(f"cmp{n:04d}", generation=g, vcpus_used=g, running_vms=g)
        for n in range(20)
        for g in range(1, 11)
    ]
    random.Random(10).shuffle(updates)
    with Listening(names) as view:
        connection = amqp.connect(rig, confirm_each=False)
        try:
            CapacityPublisher(connection, rig).publish(updates)
        finally:
            amqp.close(connection)
        wait_for(lambda: len(view) == 20 and all(view.get(h, h)["generation"] == 10 for h, _ in _keys(20)))
    assert view.dropped > 0  # some older ones came after newer ones, and were dropped
    assert all(view.get(h, h)["running_vms"] == 10 for h, _ in _keys(20))


def _keys(count):
    return [(f"cmp{n:04d}", f"cmp{n:04d}") for n in range(count)]


# 5 -------------------------------------------------------------------------------------------


def test_placement_refuses_what_fits_nowhere_and_back_to_back_picks_never_overfill(
    rig, names, postgresql_url
):
    hosts = ["cmp1", "cmp2", "cmp3"]
    with Running(rig) as running:
        # 31.5, 41.5 and 63.5 GiB free: room for 1, 2 and 3 boots of 16 GiB
        for host, memory in zip(hosts, (32 * GIB, 42 * GIB, 64 * GIB), strict=True):
            running.store.set_node(host, host, NodeInventory(vcpus=64, memory_mb=memory, local_gb=4000))
        with Listening(names) as view:
            view.load(snapshot.from_database(postgresql_url))
            assert view.fits(Request(vcpus=1, memory_mb=64 * GIB, disk_gb=1)) == []
            assert view.pick(Request(vcpus=1, memory_mb=64 * GIB, disk_gb=1)) is None

            picks = [view.pick(BOOT) for _ in range(20)]
            placed = [pick for pick in picks if pick is not None]
            assert len(placed) == 6 and picks[6:] == [None] * 14
            # each node gets what it has room for, no more: 31.5 GiB holds one 16 GiB boot
            assert collections.Counter(host for host, _node in placed) == {"cmp1": 1, "cmp2": 2, "cmp3": 3}

            # Nova boots them; the tracker counts them; the claims give way to the real usage
            _nova(rig, [_create(f"u-{i}", host, i) for i, (host, _node) in enumerate(placed)])
            wait_for(lambda: running.worker.metrics["applied"] == 6)
            wait_for(lambda: _matches_database(view, running.store) and view.pending_claims() == 0)
            assert view.pick(BOOT) is None
        for node in running.store.node_views():
            memory = node["resources"]["memory_mb"]
            assert 0 <= memory["free"] < 16 * GIB, node["host"]


# 6 -------------------------------------------------------------------------------------------


def test_a_disabled_service_is_skipped_and_an_overcommitted_node_raises_one_alert(
    rig, names, caplog, published_payloads_follow_the_schema
):
    caplog.set_level(logging.WARNING, logger="tracker.bus.relay")
    with Running(rig) as running, Listening(names) as view:
        _register(running.store, ["cmp1", "cmp2"], memory_mb=40 * GIB)
        wait_for(lambda: len(view) == 2)
        service = factories.service_payload(host="cmp2", disabled=True, reason="hardware check")
        _nova(rig, [factories.message("service.update", service, publisher="nova-api:ctl1")])
        wait_for(lambda: view.get("cmp2", "cmp2")["disabled"] is True)
        wait_for(lambda: running.worker.metrics["host_events"] == 1)
        assert running.worker.metrics["applied"] == 0  # not an instance event
        assert view.fits(BOOT) == [("cmp1", "cmp1")]
        assert [view.pick(BOOT) for _ in range(3)] == [("cmp1", "cmp1"), ("cmp1", "cmp1"), None]

        # Nova put three on cmp1 all the same (a scheduler that did not ask): over-committed
        _nova(rig, [_create(f"u-{i}", "cmp1", i) for i in range(4)])
        wait_for(lambda: running.worker.metrics["applied"] == 4)
        wait_for(lambda: len(view.alerts) >= 1 and view.get("cmp1", "cmp1")["running_vms"] == 4)
        time.sleep(0.5)  # a second alert would have come by now
    assert [event_type for event_type, _ in view.alerts] == ["capacity.overcommit"]
    ((_, alert),) = view.alerts
    over = alert["overcommitted"]["memory_mb"]
    assert over["capacity"] == 40 * GIB - 512 < over["used"]
    warnings = [r for r in caplog.records if "over-committed" in r.getMessage()]
    assert len(warnings) == 1
    assert published_payloads_follow_the_schema.count("capacity.overcommit") == 1  # and it was validated


# beyond the list: zones and aggregates from Nova, quota alerts -----------------------------


def test_aggregates_from_nova_filter_placement_and_a_quota_crossing_alerts_once(rig, names):
    with Running(rig) as running, Listening(names) as view:
        _register(running.store, ["cmp1", "cmp2"], memory_mb=128 * GIB)
        running.store.set_quota(
            factories.instance_payload("x")["nova_object.data"]["tenant_id"], {"instances": 2}
        )
        wait_for(lambda: len(view) == 2)
        aggregate = factories.aggregate_payload(
            "4d6b0c1e-0000-4000-8000-00000000a99e", "ssd", ["cmp2"], "az9"
        )
        _nova(rig, [factories.message("aggregate.add_host.end", aggregate, publisher="nova-api:ctl1")])
        wait_for(lambda: view.get("cmp2", "cmp2")["availability_zone"] == "az9")
        assert view.fits(BOOT, availability_zone="az9") == [("cmp2", "cmp2")]
        assert view.fits(BOOT, aggregate="ssd") == [("cmp2", "cmp2")]
        assert view.get("cmp1", "cmp1")["aggregates"] == []

        _nova(rig, [_create(f"u-{i}", "cmp1", i) for i in range(4)])  # 3rd and 4th over a quota of 2
        wait_for(lambda: running.worker.metrics["applied"] == 4)
        wait_for(lambda: view.get("cmp1", "cmp1")["running_vms"] == 4 and view.alerts)
        time.sleep(0.5)  # a second alert would have come by now
    assert [(kind, alert["resource"], alert["limit"]) for kind, alert in view.alerts] == [
        ("quota.exceeded", "instances", 2)
    ]
