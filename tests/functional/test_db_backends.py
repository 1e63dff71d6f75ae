"""PostgreSQL and MariaDB over real connections: schema, accounting, concurrency."""

import logging
import random
import threading

import pytest

from tests import factories
from tests.batching import count_statements, mixed_batch
from tests.conftest import make_conf
from tests.schema import schema_differences
from tests.upgrade import upgrade_with_data
from tracker.db import migration
from tracker.db.api import NodeInventory, Store
from tracker.db.apply import APPLIED, PoisonEvent
from tracker.db.engine import Database
from tracker.errors import RefusedEvent

pytestmark = pytest.mark.functional


def _store(url, stopping=None):
    conf = make_conf(url)
    return Store(Database.from_conf(conf), conf, stopping)


def test_migrations_match_models(server_url):
    assert schema_differences(server_url) == []


def test_create_and_delete_are_accounted(server_url):
    store = _store(server_url)
    migration.upgrade(store.db.engine)
    store.set_node("cmp1", "cmp1.example.org", NodeInventory(vcpus=8, memory_mb=16384, local_gb=200))
    store.apply(factories.event("create.end", 1, flavor_=factories.flavor(2, 2048, 20, 5, 1536)))
    view = store.node_views()[0]
    # 20 root + 5 ephemeral + 1536 MiB swap rounded up to 2 GiB, as Placement
    assert (view["resources"]["local_gb"]["used"], view["running_vms"], view["generation"]) == (27, 1, 2)
    store.apply(factories.event("delete.end", 2, state="deleted"))
    assert store.node_views()[0]["resources"]["vcpus"]["used"] == 0
    assert store.audit() == []
    store.db.dispose()


def test_workers_in_parallel_never_lose_an_update(server_url):
    """Four stores (four connection pools, as four worker processes) hammer two nodes.

    Every instance is created on one node and live-migrated to the other, so
    transactions lock both nodes in both directions: sorted locks must not
    deadlock, and the generation CAS must not lose an increment.
    """
    stores = [_store(server_url) for _ in range(4)]
    migration.upgrade(stores[0].db.engine)
    for host in ("cmpA", "cmpB"):
        stores[0].set_node(host, host, NodeInventory(vcpus=1000, memory_mb=10**6, local_gb=10**5))
    errors = []

    def run(worker, store):
        try:
            for i in range(15):
                src, dst = ("cmpA", "cmpB") if (worker + i) % 2 else ("cmpB", "cmpA")
                uuid_ = f"w{worker}-i{i}"
                store.apply(factories.event("create.end", 1, host=src, node=src, instance=uuid_))
                store.apply(
                    factories.event(
                        "live_migration_pre.start", 2, host=src, node=src, publisher=dst, instance=uuid_
                    )
                )
                store.apply(
                    factories.event("live_migration_post_dest.end", 3, host=dst, node=dst, instance=uuid_)
                )
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(w, s)) for w, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    views = {v["host"]: v for v in stores[0].node_views()}
    assert views["cmpA"]["running_vms"] + views["cmpB"]["running_vms"] == 60
    assert views["cmpA"]["resources"]["vcpus"]["used"] + views["cmpB"]["resources"]["vcpus"]["used"] == 120
    # one generation bump per node-touching change: 1 registration + 60 creates + 60 pre + 120 post_dest
    assert views["cmpA"]["generation"] + views["cmpB"]["generation"] == 2 + 60 + 60 + 120
    assert stores[0].audit() == []
    for store in stores:
        store.db.dispose()


def test_the_largest_sizes_nova_accepts_fit_and_leave_room_for_the_rest(server_url):
    """Issue 12: two instances of 2**31 - 1 vCPUs / MiB once overflowed the node and
    project counters, and every later event of that node failed."""
    store = _store(server_url)
    migration.upgrade(store.db.engine)
    huge = 2**31 - 1
    store.apply(factories.event("create.end", 1, instance="big-cpu", flavor_=factories.flavor(huge, 1, huge)))
    store.apply(factories.event("create.end", 1, instance="big-ram", flavor_=factories.flavor(1, huge, huge)))
    for i in range(20):
        store.apply(factories.event("create.end", 2, instance=f"small-{i}"))
    view = store.node_views()[0]
    assert view["running_vms"] == 22
    assert view["resources"]["vcpus"]["used"] == huge + 1 + 20 * 2
    assert view["resources"]["memory_mb"]["used"] == 1 + huge + 20 * 2048
    assert view["resources"]["local_gb"]["used"] == 2 * huge + 20 * 20
    assert store.project_usage()[0]["vcpus"] == huge + 1 + 20 * 2
    assert store.audit() == []
    store.db.dispose()


def _migrations(instances):
    """Each instance created on one of three nodes and live-migrated to the next."""
    hosts = ("cmpA", "cmpB", "cmpC")
    events = []
    for i in range(instances):
        src, dst = hosts[i % 3], hosts[(i + 1) % 3]
        uuid_ = f"inst-{i}"
        events += [
            factories.event("create.end", 1, host=src, node=src, instance=uuid_, project=f"p{i % 4}"),
            factories.event(
                "live_migration_pre.start",
                2,
                host=src,
                node=src,
                publisher=dst,
                instance=uuid_,
                project=f"p{i % 4}",
            ),
            factories.event(
                "live_migration_post_dest.end", 3, host=dst, node=dst, instance=uuid_, project=f"p{i % 4}"
            ),
        ]
    return events


def test_two_workers_applying_batches_that_share_instances_and_nodes(server_url, caplog):
    """Two stores (two pools, as two worker processes) get the events of the same
    instances, each in its own random order and random batches. Locks come in one
    global order, so nothing deadlocks or races; the totals are exact."""
    stores = [_store(server_url) for _ in range(2)]
    migration.upgrade(stores[0].db.engine)
    rng = random.Random(7)
    events = _migrations(60)
    rng.shuffle(events)
    shares = [events[: len(events) // 2], events[len(events) // 2 :]]
    errors = []

    def run(store, share):
        try:
            while share:
                size = rng.randint(1, 40)
                batch, share[:] = share[:size], share[size:]
                assert all(not isinstance(v, PoisonEvent) for v in store.apply_batch(batch))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    with caplog.at_level(logging.WARNING, logger="tracker.retry"):
        threads = [threading.Thread(target=run, args=pair) for pair in zip(stores, shares, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert errors == []
    assert [r.getMessage() for r in caplog.records if "deadlock" in r.getMessage().lower()] == []
    views = stores[0].node_views()
    assert sum(v["running_vms"] for v in views) == 60
    assert sum(v["resources"]["vcpus"]["used"] for v in views) == 120
    assert sorted(p["instances"] for p in stores[0].project_usage()) == [15, 15, 15, 15]
    assert stores[0].audit() == []
    for store in stores:
        store.db.dispose()


def test_an_event_the_database_refuses_is_poison_and_the_rest_of_its_batch_counts(server_url):
    store = _store(server_url)
    migration.upgrade(store.db.engine)
    events = [factories.event("create.end", 1, instance=f"inst-{i}") for i in range(7)]
    events[3] = factories.event("create.end", 1, instance="x" * 40)  # the column holds 36
    verdicts = store.apply_batch(events)
    assert isinstance(verdicts[3], PoisonEvent)
    assert "refused" in verdicts[3].reason
    assert [v.status for i, v in enumerate(verdicts) if i != 3] == [APPLIED] * 6
    assert store.node_views()[0]["running_vms"] == 6
    assert store.audit() == []
    with pytest.raises(RefusedEvent):
        store.apply(events[3])
    store.db.dispose()


def test_a_batch_takes_a_handful_of_statements(server_url):
    store = _store(server_url)
    migration.upgrade(store.db.engine)
    for n in range(20):
        store.set_node(f"cmp{n}", f"cmp{n}", NodeInventory(vcpus=64, memory_mb=262144, local_gb=2000))
    statements, outcomes = count_statements(store, mixed_batch(50, 20))  # 200 events over 20 nodes
    assert len(outcomes) == 200
    assert len(statements) <= 16, statements
    assert store.audit() == []
    store.db.dispose()


def test_names_that_differ_only_in_case_or_trailing_space_are_different_hosts(server_url):
    """A forged ``CMP07`` or ``cmp07 `` once stood for the real cmp07 on MariaDB, and every
    later event of cmp07 failed."""
    store = _store(server_url)
    migration.upgrade(store.db.engine)
    hosts = ["cmp07", "CMP07", "cmp07 ", "cmpé"]
    verdicts = store.apply_batch(
        [
            factories.event("create.end", 1, host=host, node=host, instance=f"i-{n}", project=f"p{host}")
            for n, host in enumerate(hosts)
        ]
    )
    assert [v.status for v in verdicts] == ["applied"] * 4
    store.apply(
        factories.event("create.end", 2, host="cmp07", node="cmp07", instance="i-late", project="pcmp07")
    )
    by_host = {view["host"]: view["running_vms"] for view in store.node_views()}
    assert by_host == {"cmp07": 2, "CMP07": 1, "cmp07 ": 1, "cmpé": 1}
    assert len(store.project_usage()) == 4
    assert store.audit() == []
    store.db.dispose()


def test_a_database_main_filled_upgrades(server_url):
    upgraded = upgrade_with_data(server_url)
    assert len(set(upgraded.node_uuids)) == 2 and None not in upgraded.node_uuids
    assert upgraded.allocations == [("i-1", 1)]
    assert upgraded.outbox_payloads == []  # unversioned, not to be published; the announce resends
