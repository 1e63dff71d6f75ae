"""PostgreSQL and MariaDB over real connections: schema, accounting, concurrency."""

import threading

import pytest

from tests import factories
from tests.conftest import make_conf
from tests.schema import schema_differences
from tracker.db import migration
from tracker.db.api import NodeInventory, Store
from tracker.db.engine import Database

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
    assert (view["resources"]["local_gb"]["used"], view["running_vms"], view["generation"]) == (26, 1, 2)
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
