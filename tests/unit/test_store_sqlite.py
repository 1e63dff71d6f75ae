"""The persistence layer on SQLite: counters, idempotency, tombstones, outbox, audit."""

import datetime
import json

import pytest

from tests import factories
from tracker.cmd import manage
from tracker.db.api import NodeInventory
from tracker.db.apply import AFTER_DELETE, APPLIED, DUPLICATE, STALE, UNCHANGED

NODE = ("cmp1", "cmp1.example.org")


def _used(store, node=NODE):
    view = next(v for v in store.node_views() if (v["host"], v["node"]) == node)
    r = view["resources"]
    return (r["vcpus"]["used"], r["memory_mb"]["used"], r["local_gb"]["used"], view["running_vms"])


def test_create_then_delete_counts_then_frees(store):
    flavor = factories.flavor(vcpus=4, memory_mb=4096, root_gb=40, ephemeral_gb=10, swap=1536)
    assert store.apply(factories.event("create.end", 1, flavor_=flavor)).status == APPLIED
    # disk = 40 root + 10 ephemeral + 1536 MiB swap rounded up to 2 GiB, as Placement
    assert _used(store) == (4, 4096, 52, 1)
    assert store.project_usage() == [
        {"project_id": "proj-1", "vcpus": 4, "memory_mb": 4096, "local_gb": 52, "instances": 1}
    ]
    store.apply(factories.event("delete.end", 2, state="deleted", flavor_=flavor))
    assert _used(store) == (0, 0, 0, 0)
    assert store.project_usage()[0]["instances"] == 0
    assert store.audit() == []


def test_boot_from_volume_root_disk_does_not_count(store):
    store.apply(
        factories.event("create.end", 1, bfv=True, flavor_=factories.flavor(root_gb=80, ephemeral_gb=5))
    )
    assert _used(store)[2] == 5


def test_same_message_twice_changes_nothing(store):
    event = factories.event("create.end", 1)
    store.apply(event)
    assert store.apply(event).status == DUPLICATE
    assert _used(store) == (2, 2048, 20, 1)


def test_same_event_republished_under_another_message_id_changes_nothing(store):
    store.apply(factories.event("create.end", 1))
    assert store.apply(factories.event("create.end", 1)).status == DUPLICATE
    assert _used(store) == (2, 2048, 20, 1)


def test_late_update_never_resurrects_a_deleted_instance(store):
    store.apply(factories.event("create.end", 1))
    store.apply(factories.event("delete.end", 3, state="deleted"))
    assert store.apply(factories.event("update", 2)).status == AFTER_DELETE
    assert store.apply(factories.event("update", 9)).status == AFTER_DELETE
    assert _used(store) == (0, 0, 0, 0)


def test_create_error_frees_whatever_the_uuid_held(store):
    store.apply(factories.event("update", 1, state="building", task_state="spawning"))
    assert _used(store) == (2, 2048, 20, 1)
    store.apply(factories.event("create.error", 2, host=None, node=None, publisher="cmp1", state="error"))
    assert _used(store) == (0, 0, 0, 0)


def test_stats_only_event_leaves_nodes_untouched(store):
    store.apply(factories.event("create.end", 1))
    generation = store.node_views()[0]["generation"]
    assert store.apply(factories.event("power_off.end", 2, state="stopped")).status == UNCHANGED
    assert store.node_views()[0]["generation"] == generation


def test_unknown_node_is_created_with_unknown_inventory(store):
    store.apply(factories.event("create.end", 1, host="new", node="new.example.org"))
    view = store.node_views()[0]
    assert (view["host"], view["node"]) == ("new", "new.example.org")
    assert view["resources"]["vcpus"] == {
        "total": None,
        "reserved": 0,
        "allocation_ratio": 4.0,
        "used": 2,
        "capacity": None,
        "free": None,
    }


def test_node_set_registers_inventory_and_announces_capacity(store):
    view = store.set_node(
        *NODE, NodeInventory(vcpus=16, memory_mb=65536, local_gb=500, reserved_memory_mb=1024)
    )
    assert view["resources"]["vcpus"]["capacity"] == 64  # (16 - 0) x 4.0
    assert view["resources"]["memory_mb"]["capacity"] == 64512  # (65536 - 1024) x 1.0
    store.set_node(*NODE, NodeInventory(cpu_allocation_ratio=1.5))
    vcpus = store.node_views()[0]["resources"]["vcpus"]
    assert (vcpus["total"], vcpus["capacity"]) == (16, 24)


def test_every_change_bumps_the_generation_and_outbox_keeps_only_the_newest_per_node(store):
    store.set_node(*NODE, NodeInventory(vcpus=16, memory_mb=65536, local_gb=500))
    store.apply(factories.event("create.end", 1, instance="a"))
    store.apply(factories.event("create.end", 2, instance="b"))
    published = []
    assert store.drain_outbox(100, published.extend) == 3
    assert [(p["node"], p["generation"]) for p in published] == [("cmp1.example.org", 3)]
    assert published[0]["resources"]["vcpus"]["used"] == 4
    assert store.drain_outbox(100, published.extend) == 0


def test_outbox_rows_stay_when_publishing_fails(store):
    store.apply(factories.event("create.end", 1))

    def broken(_payloads):
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        store.drain_outbox(100, broken)
    published = []
    assert store.drain_outbox(100, published.extend) == 1


def test_audit_reports_a_counter_that_drifted(store):
    store.apply(factories.event("create.end", 1))
    with store.db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE compute_nodes SET vcpus_used = 99")
    assert store.audit() == [
        "cmp1/cmp1.example.org: stored (vcpus, memory_mb, local_gb, instances)=(99, 2048, 20, 1), "
        "allocations sum to (2, 2048, 20, 1)"
    ]


def test_audit_reports_a_project_counter_that_drifted(store):
    store.apply(factories.event("create.end", 1))
    with store.db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE project_usage SET instances = 5")
    assert store.audit() == [
        "project proj-1: stored (vcpus, memory_mb, local_gb, instances)=(2, 2048, 20, 5), "
        "allocations sum to (2, 2048, 20, 1)"
    ]


def test_history_is_compacted_but_derivation_stays_the_same(store, conf):
    conf.set_override("history_limit", 4, group="accounting")
    store.apply(factories.event("create.end", 1))
    for second in range(2, 12):
        store.apply(factories.event("power_off.end" if second % 2 else "power_on.end", second))
    with store.db.engine.connect() as connection:
        kept = connection.exec_driver_sql("SELECT count(*) FROM instance_events").scalar()
    assert kept <= 4
    assert _used(store) == (2, 2048, 20, 1)
    # older than the folded snapshot: can no longer be placed, so it is stale
    assert store.apply(factories.event("delete.end", 1.5, state="deleted")).status == STALE


def test_a_host_only_destination_prefers_a_real_node_over_a_placeholder(store):
    # Given a destination host nobody has seen: the hold lands on a placeholder node
    store.apply(factories.event("create.end", 1, instance="a"))
    store.apply(factories.event("live_migration_pre.start", 2, publisher="cmp9", instance="a"))
    holds = {(v["host"], v["node"]): v["resources"]["vcpus"]["used"] for v in store.node_views()}
    assert holds[("cmp9", "cmp9")] == 2
    # When the host's real node shows up in a payload
    store.apply(factories.event("create.end", 3, host="cmp9", node="cmp9.example.org", instance="b"))
    # Then the next host-only hold goes to the real node, not the placeholder
    store.apply(factories.event("create.end", 4, instance="c"))
    store.apply(factories.event("live_migration_pre.start", 5, publisher="cmp9", instance="c"))
    holds = {(v["host"], v["node"]): v["resources"]["vcpus"]["used"] for v in store.node_views()}
    assert holds[("cmp9", "cmp9.example.org")] == 4
    assert holds[("cmp9", "cmp9")] == 2
    # and a completed move leaves the placeholder empty
    store.apply(
        factories.event("live_migration_post_dest.end", 6, host="cmp9", node="cmp9.example.org", instance="a")
    )
    holds = {(v["host"], v["node"]): v["resources"]["vcpus"]["used"] for v in store.node_views()}
    assert holds[("cmp9", "cmp9")] == 0
    assert store.audit() == []


def test_a_payload_naming_a_placeholder_confirms_it_as_a_real_node(store):
    store.apply(factories.event("create.end", 1, instance="a"))
    store.apply(factories.event("live_migration_pre.start", 2, publisher="cmp7", instance="a"))
    store.apply(factories.event("live_migration_post_dest.end", 3, host="cmp7", node="cmp7", instance="a"))
    with store.db.engine.connect() as connection:
        flags = connection.exec_driver_sql(
            "SELECT hypervisor_hostname, placeholder FROM compute_nodes WHERE host = 'cmp7'"
        )
        assert [tuple(row) for row in flags] == [("cmp7", False)]
    assert _used(store, ("cmp7", "cmp7")) == (2, 2048, 20, 1)


def test_purge_forgets_only_old_tombstones(store):
    store.apply(factories.event("create.end", 1, instance="gone"))
    store.apply(factories.event("delete.end", 2, instance="gone", state="deleted"))
    store.apply(factories.event("create.end", 3, instance="alive"))
    with store.db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE instances SET updated_at = '2020-01-01 00:00:00'")
    assert store.purge_tombstones(datetime.datetime(2025, 1, 1)) == 1
    with store.db.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT uuid FROM instances").scalars().all() == ["alive"]
        assert (
            connection.exec_driver_sql(
                "SELECT count(*) FROM instance_events WHERE instance_uuid = 'gone'"
            ).scalar()
            == 0
        )
    assert _used(store) == (2, 2048, 20, 1)
    assert store.audit() == []


def test_a_purged_instance_is_not_brought_back_by_a_late_event(store):
    store.apply(factories.event("create.end", 1, instance="gone"))
    store.apply(factories.event("delete.end", 2, instance="gone", state="deleted"))
    with store.db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE instances SET updated_at = '2020-01-01 00:00:00'")
    store.purge_tombstones(datetime.datetime(2030, 1, 1))
    # Given the tombstone is gone, when an old update of that instance arrives late
    assert store.apply(factories.event("update", 3, instance="gone")).status == AFTER_DELETE
    # Then nothing counts and no row comes back
    assert _used(store) == (0, 0, 0, 0)
    with store.db.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM instances").scalar() == 0


def test_purge_refuses_to_drop_tombstones_younger_than_a_day(tmp_path, conf):
    path = tmp_path / "tracker.conf"
    path.write_text(f"[database]\nconnection = {conf.database.connection}\n")
    with pytest.raises(SystemExit):
        manage.main(["--config-file", str(path), "purge", "--older-than-days", "0.5"])


def test_replay_into_a_broken_database_ends_with_one_line(tmp_path, conf, store, capsys):
    """Nothing can stop a command waiting out a fault (a worker's lane would): it must end,
    naming the database and the error, not retry for ever."""
    with store.db.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE project_usage")
    feed = tmp_path / "feed.jsonl"
    body = factories.envelope(factories.message("instance.create.end", factories.instance_payload("u1")))
    feed.write_text(json.dumps(body) + "\n")
    path = tmp_path / "tracker.conf"
    path.write_text(f"[database]\nconnection = {conf.database.connection}\n")
    assert manage.main(["--config-file", str(path), "replay", str(feed)]) == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "project_usage" in said[0], said
