"""Store.apply_batch on SQLite: one batch gives the verdicts one event at a time gives."""

import datetime

import pytest

from tests import factories
from tests.batching import count_statements, mixed_batch
from tests.conftest import make_conf
from tracker.db import migration
from tracker.db.api import NodeInventory, Store
from tracker.db.apply import AFTER_DELETE, APPLIED, DUPLICATE, STALE, UNCHANGED
from tracker.db.engine import Database

NODE = ("cmp1", "cmp1.example.org")


def _statuses(outcomes):
    return [outcome.status for outcome in outcomes]


def _used(store, node=NODE):
    view = next(v for v in store.node_views() if (v["host"], v["node"]) == node)
    r = view["resources"]
    return (r["vcpus"]["used"], r["memory_mb"]["used"], r["local_gb"]["used"], view["running_vms"])


def _usage(store):
    return [
        {k: v for k, v in view.items() if k not in ("generation", "uuid", "timestamp")}
        for view in store.node_views()
    ]


def _count(store, sql):
    with store.db.engine.connect() as connection:
        return connection.exec_driver_sql(sql).scalar()


@pytest.fixture
def other_store(tmp_path, conf):
    """A second, empty database with the same options: the one-event-at-a-time reference."""
    other = make_conf(f"sqlite:///{tmp_path}/reference.sqlite")
    other.set_override("history_limit", conf.accounting.history_limit, group="accounting")
    db = Database.from_conf(other)
    migration.upgrade(db.engine)
    yield Store(db, other)
    db.dispose()


def _same_as_one_by_one(store, other_store, events):
    batched = _statuses(store.apply_batch(events))
    assert batched == [other_store.apply(event).status for event in events]
    # generations differ by design: a node moves one generation per batch, not per event
    assert _usage(store) == _usage(other_store)
    assert store.project_usage() == other_store.project_usage()
    assert store.audit() == []
    return batched


def test_duplicates_inside_one_batch_count_once(store, other_store):
    create = factories.event("create.end", 1)
    republished = factories.event("create.end", 1)  # same action, host and time, another message id
    statuses = _same_as_one_by_one(store, other_store, [create, create, republished])
    assert statuses == [APPLIED, DUPLICATE, DUPLICATE]
    assert _used(store) == (2, 2048, 20, 1)


def test_late_events_inside_one_batch_are_put_in_their_place(store, other_store):
    events = [
        factories.event("create.end", 1),
        factories.event("update", 4, state="stopped"),
        factories.event("resize_prep.start", 2, publisher="cmp2", new_flavor=factories.flavor(4, 4096)),
        factories.event("resize_prep.end", 3, publisher="cmp2", new_flavor=factories.flavor(4, 4096)),
    ]
    statuses = _same_as_one_by_one(store, other_store, events)
    assert statuses[0] == APPLIED


def test_a_delete_followed_by_more_events_in_one_batch_leaves_a_tombstone(store, other_store):
    events = [
        factories.event("create.end", 1),
        factories.event("delete.end", 3, state="deleted"),
        factories.event("update", 9),
        factories.event("update", 2),
    ]
    assert _same_as_one_by_one(store, other_store, events) == [APPLIED, APPLIED, AFTER_DELETE, AFTER_DELETE]
    assert _used(store) == (0, 0, 0, 0)
    assert _count(store, "SELECT count(*) FROM instance_events") == 0
    assert _count(store, "SELECT deleted FROM instances") == 1


def test_compaction_inside_one_batch_derives_the_same_state(store, other_store, conf):
    conf.set_override("history_limit", 4, group="accounting")
    other_store._conf.set_override("history_limit", 4, group="accounting")
    events = [factories.event("create.end", 1)]
    events += [factories.event("power_off.end" if s % 2 else "power_on.end", s) for s in range(2, 12)]
    events.append(factories.event("delete.end", 1.5, state="deleted"))  # older than the snapshot by now
    statuses = _same_as_one_by_one(store, other_store, events)
    assert statuses[-1] == STALE
    assert _count(store, "SELECT count(*) FROM instance_events") <= 4
    assert _count(store, "SELECT event_count FROM instances") == _count(
        store, "SELECT count(*) FROM instance_events"
    )


def test_host_only_destinations_resolve_in_arrival_order_within_a_batch(store, other_store):
    events = [
        factories.event("create.end", 1, instance="a"),
        factories.event("live_migration_pre.start", 2, publisher="cmp9", instance="a"),
        factories.event("create.end", 3, host="cmp9", node="cmp9.example.org", instance="b"),
        factories.event("create.end", 4, instance="c"),
        factories.event("live_migration_pre.start", 5, publisher="cmp9", instance="c"),
        factories.event(
            "live_migration_post_dest.end", 6, host="cmp9", node="cmp9.example.org", instance="a"
        ),
        factories.event("live_migration_pre.start", 7, publisher="cmp7", instance="c", host="cmp1"),
        factories.event("create.end", 8, host="cmp7", node="cmp7", instance="d"),
    ]
    _same_as_one_by_one(store, other_store, events)
    holds = {(v["host"], v["node"]): v["resources"]["vcpus"]["used"] for v in store.node_views()}
    assert holds[("cmp9", "cmp9")] == 0
    assert holds[("cmp9", "cmp9.example.org")] == 6  # a moved in, b lives there, c holds its destination


def test_an_event_that_changes_nothing_is_unchanged_and_announces_nothing(store):
    store.set_node(*NODE, NodeInventory(vcpus=16, memory_mb=65536, local_gb=500))
    outcomes = store.apply_batch(
        [factories.event("create.end", 1), factories.event("power_off.end", 2, state="stopped")]
    )
    assert _statuses(outcomes) == [APPLIED, UNCHANGED]
    published = []
    store.drain_outbox(100, published.extend)
    # one notification per node and batch, with the final generation
    assert [(p["node"], p["generation"], p["running_vms"]) for p in published] == [(NODE[1], 2, 1)]


def test_a_purged_instance_stays_gone_while_a_newer_event_of_it_counts(store):
    with store.db.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO watermarks (name, value) VALUES ('tombstones_purged_before', :value)",
            {"value": (factories.T0 + datetime.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.%f")},
        )
    outcomes = store.apply_batch(
        [
            factories.event("update", 3, instance="gone"),
            factories.event("create.end", 4, instance="gone"),
            factories.event("create.end", 6, instance="new"),
        ]
    )
    assert _statuses(outcomes) == [AFTER_DELETE, AFTER_DELETE, APPLIED]
    assert _count(store, "SELECT uuid FROM instances") == "new"
    assert _count(store, "SELECT count(*) FROM instances") == 1


def test_a_batch_takes_a_handful_of_statements_not_a_few_per_event(store):
    for n in range(20):
        store.set_node(f"cmp{n}", f"cmp{n}", NodeInventory(vcpus=64, memory_mb=262144, local_gb=2000))
    statements, outcomes = count_statements(store, mixed_batch(50, 20))  # 200 events, 20 nodes
    assert len(outcomes) == 200
    assert _statuses(outcomes).count(APPLIED) == 150
    assert len(statements) <= 16, statements
    # and the next batch, with stored history to read, takes no more
    updates = [
        factories.event(
            "update", 5 + k, host=f"cmp{(i + 1) % 20}", node=f"cmp{(i + 1) % 20}", instance=f"inst-{i}"
        )
        for k in range(4)
        for i in range(50)
    ]
    statements, outcomes = count_statements(store, updates)
    assert _statuses(outcomes) == [UNCHANGED] * 200
    assert len(statements) <= 16, statements
    assert store.audit() == []
