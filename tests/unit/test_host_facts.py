"""Service and aggregate notifications: parsed, stored apart from instance accounting,
carried in every node's payload; over-commit and quota alerts once per crossing (SQLite)."""

import datetime
import json
import pathlib
import re

import pytest

from tests import factories
from tests.conftest import make_conf
from tests.payload_schema import problems
from tracker.bus import decide
from tracker.client.view import CapacityView, Request
from tracker.db import migration
from tracker.db.api import NodeInventory, Store
from tracker.db.engine import Database
from tracker.db.nodes import InvalidInventory
from tracker.errors import ConfigError
from tracker.events.hosts import AggregateState, ServiceStatus

NODE = ("cmp1", "cmp1.example.org")
MAX = 1_000_000


def _decide(event_type, payload, seconds=0):
    timestamp = factories.T0 + datetime.timedelta(seconds=seconds)
    return decide.decide(factories.message(event_type, payload, timestamp=timestamp), MAX)


def _drain(store):
    published = []
    store.drain_outbox(1000, published.extend)
    for payload in published:
        assert problems("capacity.update", payload) == []
    return published


def _alerts(store):
    alerts = []
    store.drain_alerts(1000, alerts.extend)
    for event_type, payload in alerts:
        assert problems(event_type, payload) == []
    return alerts


def test_service_and_aggregate_notifications_are_host_events_not_instance_events():
    service = _decide("service.update", factories.service_payload(disabled=True, reason="maint"))
    assert service.kind == decide.HOST and service.event is None
    assert service.host_event == ServiceStatus("cmp1", True, "maint", False, None, factories.T0)
    aggregate = _decide(
        "aggregate.add_host.end", factories.aggregate_payload("u-1", "fast", ["b", "a"], "az1")
    )
    assert aggregate.host_event == AggregateState("u-1", "fast", "az1", ("a", "b"), False, factories.T0)
    assert (
        _decide("aggregate.add_host.start", factories.aggregate_payload("u-1", "f", [])).kind == decide.IGNORE
    )
    scheduler = factories.service_payload(binary="nova-scheduler")
    assert _decide("service.update", scheduler).kind == decide.IGNORE


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("service.update", {"host": "cmp1"}),
        ("service.update", factories.service_payload(host="cmp1\x1b[2J")),
        ("aggregate.create.end", factories.aggregate_payload("u-1", "x", "cmp1")),
    ],
)
def test_a_malformed_host_notification_is_poison(event_type, payload):
    assert _decide(event_type, payload).kind == decide.POISON


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [  # what Nova's legacy notifier sends (nova/compute/api.py AggregateAPI)
        ("aggregate.create.end", {"aggregate_id": 7, "name": "fast", "availability_zone": "az1"}),
        ("aggregate.addhost.end", {"aggregate_id": 7, "host_name": "cmp1"}),
        ("aggregate.updatemetadata.end", {"aggregate_id": 7, "meta_data": {"ssd": "true"}}),
        ("aggregate.delete.end", {"aggregate_id": 7}),
    ],
)
def test_a_legacy_aggregate_notification_is_ignored_not_poison(event_type, payload):
    decision = _decide(event_type, payload)
    assert decision.kind == decide.IGNORE
    assert "legacy aggregate" in decision.reason


def test_a_disabled_service_is_announced_on_every_node_of_its_host_and_counts_nothing(store):
    store.set_node(*NODE, NodeInventory(vcpus=16, memory_mb=32768, local_gb=400))
    store.apply(factories.event("create.end", 1))
    _drain(store)
    event = _decide("service.update", factories.service_payload(disabled=True, reason="maint"), 5).host_event
    assert store.apply_host_event(event) == 1
    (payload,) = _drain(store)
    assert (payload["disabled"], payload["disabled_reason"], payload["generation"]) == (True, "maint", 3)
    assert payload["resources"]["vcpus"]["used"] == 2  # instance accounting untouched
    assert store.audit() == []
    # the same state again, or an older one delivered late, announces nothing
    assert store.apply_host_event(event) == 0
    older = _decide("service.update", factories.service_payload(disabled=False), 4).host_event
    assert store.apply_host_event(older) == 0
    assert store.node_views()[0]["disabled"] is True


def test_a_deleted_compute_service_is_never_placeable_until_nova_creates_it_again(store):
    store.set_node(*NODE, NodeInventory(vcpus=16, memory_mb=32768, local_gb=400))
    _drain(store)
    delete = _decide("service.delete", factories.service_payload(), 5)
    assert delete.kind == decide.HOST
    assert store.apply_host_event(delete.host_event) == 1
    (payload,) = _drain(store)
    assert (payload["disabled"], payload["disabled_reason"]) == (True, "nova-compute service deleted")
    view = CapacityView()
    view.offer(payload)
    assert view.fits(Request(1, 512, 1)) == []
    create = _decide("service.create", factories.service_payload(), 6).host_event
    assert store.apply_host_event(create) == 1
    assert _drain(store)[0]["disabled"] is False


def test_aggregates_give_zone_and_membership_and_follow_hosts_in_and_out(store):
    for host in ("a", "b"):
        store.set_node(host, host, NodeInventory(vcpus=8, memory_mb=8192, local_gb=100))
    store.apply_host_event(_decide("service.update", factories.service_payload(host="a")).host_event)
    add = factories.aggregate_payload("u-1", "fast", ["a"], zone="az1")
    assert store.apply_host_event(_decide("aggregate.add_host.end", add, 1).host_event) == 1
    views = {v["host"]: v for v in store.node_views()}
    assert views["a"]["availability_zone"] == "az1"  # the aggregate's zone wins over the service's
    assert views["a"]["aggregates"] == [{"uuid": "u-1", "name": "fast"}]
    # in no zone aggregate: Nova's default_availability_zone, told or not of the service
    assert views["b"]["aggregates"] == [] and views["b"]["availability_zone"] == "nova"
    move = factories.aggregate_payload("u-1", "fast", ["b"], zone="az1")
    assert store.apply_host_event(_decide("aggregate.remove_host.end", move, 2).host_event) == 2
    views = {v["host"]: v for v in store.node_views()}
    assert views["a"]["availability_zone"] == "nova" and views["b"]["availability_zone"] == "az1"
    # a late add_host, older than what we have, changes nothing
    assert store.apply_host_event(_decide("aggregate.add_host.end", add, 1.5).host_event) == 0
    delete = factories.aggregate_payload("u-1", "fast", None, zone="az1")
    assert store.apply_host_event(_decide("aggregate.delete.end", delete, 3).host_event) == 1
    assert all(v["aggregates"] == [] for v in store.node_views())
    _drain(store)


def test_the_default_zone_is_configurable_as_novas_and_every_path_carries_it(tmp_path):
    conf = make_conf(f"sqlite:///{tmp_path}/t.sqlite", DEFAULT={"default_availability_zone": "az-default"})
    store = Store(Database.from_conf(conf), conf)
    migration.upgrade(store.db.engine)
    assert (
        store.set_node(*NODE, NodeInventory(vcpus=8, memory_mb=8192, local_gb=100))["availability_zone"]
        == "az-default"
    )
    published = _drain(store)
    store.apply(factories.event("create.end", 1))
    published += _drain(store)
    store.apply_host_event(_decide("service.update", factories.service_payload(disabled=True), 5).host_event)
    published += _drain(store)
    assert [payload["availability_zone"] for payload in published] == ["az-default"] * 3
    assert store.node_payloads()[0]["availability_zone"] == "az-default"
    view = CapacityView()
    view.load(published)
    assert view.fits(Request(1, 512, 1), availability_zone="az-default") == []  # disabled
    store.apply_host_event(_decide("service.update", factories.service_payload(), 6).host_event)
    view.offer(_drain_one_more(store))
    assert view.fits(Request(1, 512, 1), availability_zone="az-default") == [NODE]


def _drain_one_more(store):
    (payload,) = _drain(store)
    return payload


def test_an_overcommitted_node_raises_one_alert_per_crossing(store):
    store.set_node(*NODE, NodeInventory(vcpus=1, memory_mb=32768, local_gb=400, cpu_allocation_ratio=1.0))
    store.apply(factories.event("create.end", 1, instance="a"))  # 2 vCPUs on 1: over
    store.apply(factories.event("create.end", 2, instance="b"))  # still over: no second alert
    ((event_type, alert),) = _alerts(store)
    assert event_type == "capacity.overcommit"
    assert alert["overcommitted"] == {"vcpus": {"used": 2, "capacity": 1}}
    assert (alert["host"], alert["nodename"], alert["generation"]) == (*NODE, 2)
    store.apply(factories.event("delete.end", 3, instance="a", state="deleted"))
    store.apply(factories.event("delete.end", 4, instance="b", state="deleted"))
    assert _alerts(store) == []
    store.apply(factories.event("create.end", 5, instance="c"))  # over again: a new crossing
    assert len(_alerts(store)) == 1
    # shrinking the inventory under the usage is a crossing too
    store.set_node(*NODE, NodeInventory(memory_mb=1024))
    ((_type, alert),) = _alerts(store)
    assert alert["overcommitted"]["memory_mb"] == {"used": 2048, "capacity": 1024 - 512}


def test_service_and_aggregate_changes_of_an_overcommitted_node_raise_no_new_alert(store):
    store.set_node(*NODE, NodeInventory(vcpus=1, memory_mb=32768, local_gb=400, cpu_allocation_ratio=1.0))
    store.apply(factories.event("create.end", 1, instance="a"))  # 2 vCPUs on 1: over
    assert len(_alerts(store)) == 1
    changes = [
        ("service.update", factories.service_payload(disabled=True, reason="maint")),
        ("aggregate.add_host.end", factories.aggregate_payload("u-1", "fast", ["cmp1"], "az1")),
        ("service.update", factories.service_payload(disabled=False)),
    ]
    for seconds, (event_type, payload) in enumerate(changes, start=5):
        assert store.apply_host_event(_decide(event_type, payload, seconds).host_event) == 1
    assert _alerts(store) == []  # still the same crossing


def test_quota_alerts_once_per_crossing_with_per_project_overrides(store):
    store.set_node(*NODE, NodeInventory(vcpus=16, memory_mb=32768, local_gb=400))
    store.set_quota("proj-1", {"instances": 1, "vcpus": -1})
    store.apply(factories.event("create.end", 1, instance="a"))
    assert _alerts(store) == []
    store.apply(factories.event("create.end", 2, instance="b"))
    store.apply(factories.event("create.end", 3, instance="c"))
    ((event_type, alert),) = _alerts(store)
    assert event_type == "quota.exceeded"
    assert {k: alert[k] for k in ("project_id", "resource", "limit", "used")} == {
        "project_id": "proj-1",
        "resource": "instances",
        "limit": 1,
        "used": 2,
    }
    store.apply(factories.event("create.end", 4, instance="d", project="proj-2"))
    assert _alerts(store) == []  # defaults: no limit
    assert store.quota_limits()[1] == {"proj-1": {"instances": 1, "vcpus": -1}}
    # a limit set under the usage is a crossing: alerted now, once
    (crossed,) = store.set_quota("proj-2", {"vcpus": 1, "instances": 5})
    assert (crossed["resource"], crossed["used"], crossed["limit"]) == ("vcpus", 2, 1)
    assert [alert["project_id"] for _type, alert in _alerts(store)] == ["proj-2"]
    assert store.set_quota("proj-2", {"vcpus": 0}) == []  # over already
    store.apply(factories.event("create.end", 5, instance="e", project="proj-2"))
    assert _alerts(store) == []


def test_quota_defaults_come_from_the_configuration(conf):
    conf.set_override("vcpus", 3, group="quota")
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    store = Store(db, conf)
    store.apply(factories.event("create.end", 1, instance="a"))
    store.apply(factories.event("create.end", 2, instance="b"))
    assert [(t, a["resource"], a["used"]) for t, a in _alerts(store)] == [("quota.exceeded", "vcpus", 4)]
    db.dispose()


def test_every_example_in_the_payload_documentation_follows_the_schema():
    doc = (pathlib.Path(__file__).resolve().parents[2] / "doc" / "capacity-notification.md").read_text()
    sections = re.split(r"^## ", doc, flags=re.MULTILINE)
    examples = {}
    for section in sections:
        kind = re.match(r"`([a-z._]+)`", section)
        block = re.search(r"```json\n(.*?)```", section, flags=re.DOTALL)
        if kind and block:
            examples[kind.group(1)] = json.loads(block.group(1))
    assert set(examples) == {"capacity.update", "capacity.overcommit", "quota.exceeded"}
    for event_type, example in examples.items():
        assert problems(event_type, example) == []


@pytest.mark.parametrize(
    "inventory",
    [
        NodeInventory(vcpus=-1),
        NodeInventory(memory_mb=4096, reserved_memory_mb=-4),
        NodeInventory(cpu_allocation_ratio=0.0),
        NodeInventory(ram_allocation_ratio=float("nan")),
        NodeInventory(disk_allocation_ratio=float("inf")),
    ],
)
def test_the_store_refuses_an_inventory_whose_payload_would_fail_the_schema(store, inventory):
    store.set_node(*NODE, NodeInventory(vcpus=8, memory_mb=8192, local_gb=100))
    _drain(store)
    with pytest.raises(InvalidInventory):
        store.set_node(*NODE, inventory)
    assert _drain(store) == []
    assert problems("capacity.update", store.node_payloads()[0]) == []


def test_an_initial_allocation_ratio_of_zero_is_a_configuration_mistake(tmp_path):
    conf = make_conf(f"sqlite:///{tmp_path}/t.sqlite", accounting={"initial_ram_allocation_ratio": 0.0})
    with pytest.raises(ConfigError, match=r"initial_ram_allocation_ratio .*above 0"):
        Store(Database.from_conf(conf), conf)
