"""Every row of nova-events.md's event table, in both notification formats.

Each scenario is one Nova lifecycle as Nova emits it (publisher, payload host
and state at each step); after every step the usage of every node is checked
against what Placement holds at that point (the default
[accounting] disk_rounding; swap aside, Nova's resource tracker agrees).
"""

import datetime
import logging

import pytest
import sqlalchemy as sa

from tests import factories
from tests.conftest import make_conf
from tests.steps import NEW, NODES, OLD, Step, hold, plus, render
from tracker.bus import decide
from tracker.bus.monitor import Monitor
from tracker.db import migration
from tracker.db.api import NodeInventory, Store
from tracker.db.engine import Database
from tracker.db.models import ParkedFailure
from tracker.metrics import Metrics

A_OLD = {"A": hold(OLD, 1)}
B_OLD = {"B": hold(OLD, 1)}
REVERTING = "resize_reverting"


def _built(host="A"):
    return [Step("create.end", host, host, expect={host: hold(OLD, 1)})]


def _holding(dest, switched):
    """A resize from A to ``dest``: the source keeps OLD, the destination holds NEW.

    ``switched``: instance.host already moved to the destination (after resize.end),
    so running_vms counts it there.
    """
    source, target = (hold(OLD), hold(NEW, 1)) if switched else (hold(OLD, 1), hold(NEW))
    if dest == "A":
        return {"A": plus(source, target)}
    return {"A": source, dest: target}


def _resized(dest):
    """Build on A, then resize to ``dest`` up to the resized state that awaits confirm or revert."""
    before, after = _holding(dest, switched=False), _holding(dest, switched=True)
    return [
        *_built(),
        Step("resize_prep.start", dest, "A", task="resize_prep", new_flavor=NEW, expect=A_OLD),
        Step("resize_prep.end", dest, "A", task="resize_prep", new_flavor=NEW, expect=before),
        Step("resize.start", "A", "A", task="resize_migrating", expect=before),
        Step("resize.end", "A", dest, task="resize_migrated", expect=after),
        Step("resize_finish.start", dest, dest, task="resize_finish", flavor=NEW, expect=after),
        Step("resize_finish.end", dest, dest, state="resized", flavor=NEW, expect=after),
    ]


SCENARIOS = {
    "build": [
        Step("create.start", "A", None, state="building", task="spawning"),
        Step("create.end", "A", "A", expect=A_OLD),
    ],
    "build_rescheduled_after_create_error": [
        Step("create.start", "A", None, state="building"),
        Step("create.error", "A", None, state="building", task="spawning"),
        Step("create.start", "B", None, state="building"),
        Step("create.end", "B", "B", expect=B_OLD),
    ],
    "build_boot_from_volume": [
        Step("create.end", "A", "A", bfv=True, expect={"A": hold(OLD, 1, bfv=True)}),
    ],
    "delete_from_compute": [
        *_built(),
        Step("delete.start", "A", "A", task="deleting", expect=A_OLD),
        Step("delete.end", "A", "A", state="deleted"),
    ],
    "local_delete_of_never_scheduled_instance": [
        Step("create.start", "A", None, state="building"),
        Step("delete.start", "api", None, state="building", task="deleting"),
        Step("delete.end", "api", None, state="deleted"),
    ],
    "local_delete_from_api_while_compute_is_down": [
        *_built(),
        Step("delete.end", "api", "A", state="deleted"),
    ],
    "soft_delete_still_counts_then_restore": [
        *_built(),
        Step("soft_delete.end", "A", "A", state="soft-delete", expect=A_OLD),
        Step("restore.end", "A", "A", expect=A_OLD),
    ],
    "soft_delete_then_reclaim": [
        *_built(),
        Step("soft_delete.end", "A", "A", state="soft-delete", expect=A_OLD),
        Step("delete.end", "A", "A", state="deleted"),
    ],
    "shelve_still_counts": [
        *_built(),
        Step("shelve.end", "A", "A", state="shelved", expect=A_OLD),
    ],
    "shelve_offload_frees_with_null_host": [
        *_built(),
        Step("shelve.end", "A", "A", state="shelved", task="shelving_offloading", expect=A_OLD),
        Step("shelve_offload.start", "A", "A", state="shelved", task="shelving_offloading", expect=A_OLD),
        Step("shelve_offload.end", "A", None, state="shelved_offloaded"),
    ],
    "unshelve_claims_on_the_new_host": [
        *_built(),
        Step("shelve_offload.end", "A", None, state="shelved_offloaded"),
        Step("unshelve.start", "B", None, state="shelved_offloaded", task="unshelving"),
        # the claim set host/node; allow_resource_removal is false while spawning
        Step("update", "B", "B", state="shelved_offloaded", task="spawning", expect=B_OLD),
        Step("unshelve.end", "B", "B", expect=B_OLD),
    ],
    "resize_to_another_host_then_confirm": [
        *_resized("B"),
        Step("resize_confirm.start", "A", "B", state="resized", flavor=NEW, expect=_holding("B", True)),
        Step("resize_confirm.end", "A", "B", flavor=NEW, expect={"B": hold(NEW, 1)}),
    ],
    "resize_revert_frees_the_destination": [
        *_resized("B"),
        Step("resize_revert.start", "A", "B", state="resized", task=REVERTING, flavor=NEW, expect=A_OLD),
        Step("resize_revert.end", "A", "A", expect=A_OLD),
    ],
    "same_host_resize_holds_both_flavors_then_confirm": [
        *_resized("A"),
        Step("resize_confirm.end", "A", "A", flavor=NEW, expect={"A": hold(NEW, 1)}),
    ],
    "same_host_resize_revert": [
        *_resized("A"),
        Step("resize_revert.start", "A", "A", state="resized", task=REVERTING, flavor=NEW, expect=A_OLD),
        Step("resize_revert.end", "A", "A", expect=A_OLD),
    ],
    "resize_error_at_prep_then_rescheduled": [
        *_built(),
        Step("resize_prep.start", "B", "A", task="resize_prep", new_flavor=NEW, expect=A_OLD),
        Step("resize.error", "B", "A", task="resize_prep", expect=A_OLD),
        Step("resize_prep.end", "B", "A", task="resize_prep", new_flavor=NEW, expect=A_OLD),
        Step("resize_prep.start", "C", "A", task="resize_prep", new_flavor=NEW, expect=A_OLD),
        Step(
            "resize_prep.end",
            "C",
            "A",
            task="resize_prep",
            new_flavor=NEW,
            expect={"A": hold(OLD, 1), "C": hold(NEW)},
        ),
    ],
    "cold_migration_is_a_resize_to_the_same_flavor": [
        *_built(),
        Step(
            "resize_prep.end",
            "B",
            "A",
            task="resize_prep",
            new_flavor=OLD,
            expect={"A": hold(OLD, 1), "B": hold(OLD)},
        ),
        Step("resize.end", "A", "B", task="resize_migrated", expect={"A": hold(OLD), "B": hold(OLD, 1)}),
        Step("resize_finish.end", "B", "B", state="resized", expect={"A": hold(OLD), "B": hold(OLD, 1)}),
        Step("resize_confirm.end", "A", "B", expect=B_OLD),
    ],
    "live_migration": [
        *_built(),
        Step(
            "live_migration_pre.start", "B", "A", task="migrating", expect={"A": hold(OLD, 1), "B": hold(OLD)}
        ),
        Step(
            "live_migration_pre.end", "B", "A", task="migrating", expect={"A": hold(OLD, 1), "B": hold(OLD)}
        ),
        Step(
            "live_migration_post.start",
            "A",
            "A",
            task="migrating",
            expect={"A": hold(OLD, 1), "B": hold(OLD)},
        ),
        Step(
            "live_migration_post_dest.start",
            "B",
            "A",
            task="migrating",
            expect={"A": hold(OLD, 1), "B": hold(OLD)},
        ),
        Step("live_migration_post_dest.end", "B", "B", expect=B_OLD),
        # stale: still names the source, and must move nothing
        Step("live_migration_post.end", "A", "A", task="migrating", expect=B_OLD),
    ],
    "live_migration_rollback": [
        *_built(),
        Step(
            "live_migration_pre.start", "B", "A", task="migrating", expect={"A": hold(OLD, 1), "B": hold(OLD)}
        ),
        Step(
            "live_migration_rollback.start",
            "A",
            "A",
            task="migrating",
            expect={"A": hold(OLD, 1), "B": hold(OLD)},
        ),
        Step("live_migration_rollback.end", "A", "A", expect=A_OLD),
        Step("live_migration_rollback_dest.start", "B", "A", task="migrating", expect=A_OLD),
        Step("live_migration_rollback_dest.end", "B", "A", task="migrating", expect=A_OLD),
    ],
    "live_migration_rollback_dest_first": [
        *_built(),
        Step(
            "live_migration_pre.end", "B", "A", task="migrating", expect={"A": hold(OLD, 1), "B": hold(OLD)}
        ),
        Step("live_migration_rollback_dest.end", "B", "A", task="migrating", expect=A_OLD),
        Step("live_migration_rollback.end", "A", "A", expect=A_OLD),
    ],
    "evacuate": [
        *_built(),
        Step("rebuild_scheduled", "B", "A", task="rebuilding", expect=A_OLD),
        Step("exists", "B", "A", task="rebuilding", expect=A_OLD),
        Step("rebuild.start", "B", "A", task="rebuilding", expect={"A": hold(OLD, 1), "B": hold(OLD)}),
        Step("rebuild.end", "B", "A", expect=B_OLD),
        Step("update", "B", "B", expect=B_OLD),
    ],
    "evacuate_failure_keeps_the_failed_host": [
        *_built(),
        Step("rebuild.start", "B", "A", task="rebuilding", expect={"A": hold(OLD, 1), "B": hold(OLD)}),
        Step("rebuild.error", "B", "A", state="error", expect=A_OLD),
    ],
    "plain_rebuild_changes_nothing": [
        *_built(),
        Step("rebuild.start", "A", "A", task="rebuilding", expect=A_OLD),
        Step("rebuild.end", "A", "A", expect=A_OLD),
    ],
    "stats_only_actions": [
        *_built(),
        *[
            Step(action, "A", "A", state=state, expect=A_OLD)
            for action, state in [
                ("power_off.end", "stopped"),
                ("power_on.end", "active"),
                ("pause.end", "paused"),
                ("unpause.end", "active"),
                ("suspend.end", "suspended"),
                ("resume.end", "active"),
                ("reboot.end", "active"),
                ("rescue.end", "rescued"),
                ("unrescue.end", "active"),
                ("snapshot.end", "active"),
                ("interface_attach.end", "active"),
                ("volume_attach.end", "active"),
                ("trigger_crash_dump.end", "active"),
            ]
        ],
    ],
    "error_state_still_counts": [
        *_built(),
        Step("update", "A", "A", state="error", expect=A_OLD),
    ],
    "exists_snapshot_brings_in_an_unknown_instance": [
        Step("exists", "A", "A", expect=A_OLD),
    ],
    "update_to_deleted_frees": [
        *_built(),
        Step("update", "A", "A", state="deleted"),
        Step("delete.end", "A", "A", state="deleted"),
    ],
}

RESIZE = "req-resize"
CONFIRM = "req-confirm"
A_OLD_B_NEW = {"A": hold(OLD, 1), "B": hold(NEW)}
A_NEW = {"A": hold(NEW, 1)}
B_NEW = {"B": hold(NEW, 1)}


def _prepared(dest="B", request=RESIZE):
    """Built on A; ``dest`` claimed NEW for ``request`` (resize_prep.end): a move in flight."""
    held = {"A": plus(hold(OLD, 1), hold(NEW))} if dest == "A" else {"A": hold(OLD, 1), dest: hold(NEW)}
    return [
        *_built(),
        Step(
            "resize_prep.start", dest, "A", task="resize_prep", new_flavor=NEW, request=request, expect=A_OLD
        ),
        Step("resize_prep.end", dest, "A", task="resize_prep", new_flavor=NEW, request=request, expect=held),
    ]


def _source_started(request=RESIZE):
    return Step("resize.start", "A", "A", task="resize_migrating", request=request, expect=A_OLD_B_NEW)


SWITCHED = {"A": hold(OLD), "B": hold(NEW, 1)}


def _switched():
    """The source moved the instance to B (resize.end): B holds NEW, A still OLD."""
    return [
        *_prepared(),
        _source_started(),
        Step("resize.end", "A", "B", task="resize_migrated", request=RESIZE, expect=SWITCHED),
    ]


# A versioned failure names no function: taken as freeing the destination until
# the source's resize.start or resize.end of its request proves otherwise; the
# legacy one names finish_resize, which keeps the destination at once.
def _by_format(versioned, legacy):
    return {"versioned": versioned, "legacy": legacy}


# Failures (nova/compute/manager.py wrap_exception): the versioned compute.exception
# names only the request; the legacy error names the manager's function and the instance.
FAILURE_SCENARIOS = {
    "resize_fails_on_source_frees_the_destination": [
        *_prepared(),
        _source_started(),
        # migrate_disk_and_power_off raised InstanceFaultRollback or ResizeError:
        # _revert_allocation gives the source back to the instance, frees the destination
        Step("failure:resize_instance", "A", "A", request=RESIZE, expect=A_OLD),
    ],
    "resize_fails_on_source_before_the_destination_ends_its_prep": [
        *_built(),
        Step("resize_prep.start", "B", "A", task="resize_prep", new_flavor=NEW, request=RESIZE, expect=A_OLD),
        Step("resize.start", "A", "A", task="resize_migrating", request=RESIZE, expect=A_OLD),
        Step("failure:resize_instance", "A", "A", request=RESIZE, expect=A_OLD),
        # resize_prep.end is sent in a finally, after the cast to the source
        Step("resize_prep.end", "B", "A", task="resize_prep", new_flavor=NEW, request=RESIZE, expect=A_OLD),
    ],
    "resize_fails_on_source_into_error_still_counts_on_the_source": [
        *_prepared(),
        _source_started(),
        Step("failure:resize_instance", "A", "A", request=RESIZE, expect=A_OLD),
        Step("update", "A", "A", state="error", task="resize_migrating", request=RESIZE, expect=A_OLD),
    ],
    "same_host_resize_fails_on_source": [
        *_prepared(dest="A"),
        Step(
            "resize.start",
            "A",
            "A",
            task="resize_migrating",
            request=RESIZE,
            expect={"A": plus(hold(OLD, 1), hold(NEW))},
        ),
        Step("failure:resize_instance", "A", "A", request=RESIZE, expect=A_OLD),
    ],
    "cold_migration_fails_at_prep_without_reschedule": [
        *_prepared(),
        Step("failure:prep_resize", "B", "A", request=RESIZE, expect=A_OLD),
    ],
    "cold_migration_fails_at_finish_keeps_the_destination": [
        *_switched(),
        # finish_resize failed: _delete_allocation_after_move frees the source
        Step("failure:finish_resize", "B", "B", request=RESIZE, expect={"B": hold(NEW, 1)}),
    ],
    "finish_failing_stamped_between_the_source_resize_start_and_end": [
        # finish_resize is cast before resize.end: it may fail first, and its
        # host's clock may be behind the source's
        *_prepared(),
        _source_started(),
        Step("failure:finish_resize", "B", "B", request=RESIZE, expect={"B": hold(NEW, 1)}),
        Step("resize.end", "A", "B", task="resize_migrated", request=RESIZE, expect={"B": hold(NEW, 1)}),
    ],
    "same_host_finish_failing_before_resize_end": [
        *_prepared(dest="A"),
        Step("resize.start", "A", "A", task="resize_migrating", request=RESIZE, expect=_holding("A", False)),
        Step("failure:finish_resize", "A", "A", request=RESIZE, expect=_by_format(A_OLD, A_NEW)),
        Step("resize.end", "A", "A", task="resize_migrated", request=RESIZE, expect={"A": hold(NEW, 1)}),
    ],
    "finish_failing_stamped_before_the_source_resize_start": [
        *_prepared(),
        Step("failure:finish_resize", "B", "B", request=RESIZE, expect=_by_format(A_OLD, B_NEW)),
        Step("resize.start", "A", "A", task="resize_migrating", request=RESIZE, expect={"B": hold(NEW, 1)}),
        Step("resize.end", "A", "B", task="resize_migrated", request=RESIZE, expect={"B": hold(NEW, 1)}),
    ],
    "confirm_fails_on_source_still_frees_it": [
        *_switched(),
        Step("resize_finish.end", "B", "B", state="resized", flavor=NEW, request=RESIZE, expect=SWITCHED),
        Step("resize_confirm.start", "A", "B", state="resized", flavor=NEW, request=CONFIRM, expect=SWITCHED),
        Step("failure:confirm_resize", "A", "B", request=CONFIRM, expect={"B": hold(NEW, 1)}),
    ],
    "failure_of_another_request_changes_nothing": [
        *_prepared(),
        _source_started(),
        Step("failure:resize_instance", "A", "A", request="req-reboot", expect=A_OLD_B_NEW),
    ],
    "failure_from_a_host_outside_the_move_changes_nothing": [
        *_prepared(),
        Step("failure:resize_instance", "C", "A", request=RESIZE, expect=A_OLD_B_NEW),
    ],
    "late_failure_of_an_earlier_resize_changes_nothing": [
        *_prepared(),
        _source_started(),
        Step("failure:resize_instance", "A", "A", request=RESIZE, expect=A_OLD),
        Step(
            "resize_prep.end",
            "C",
            "A",
            task="resize_prep",
            new_flavor=NEW,
            request="req-again",
            expect={"A": hold(OLD, 1), "C": hold(NEW)},
        ),
        Step("failure:resize_instance", "A", "A", request=RESIZE, expect={"A": hold(OLD, 1), "C": hold(NEW)}),
    ],
    "revert_failing_on_the_destination_changes_nothing": [
        *_resized("B"),
        # revert_resize failed before drop_move_claim_at_dest: Placement still holds both
        Step("failure:revert_resize", "B", "B", request="req-revert", expect=_holding("B", True)),
    ],
}

VERSIONED_ONLY_SCENARIOS = {
    "lock_is_stats_only": [
        *_built(),
        Step("lock", "api", "A", expect=A_OLD),
        Step("unlock", "api", "A", expect=A_OLD),
    ],
    "evacuate_notification_from_api": [
        *_built(),
        Step("evacuate", "api", "A", task="rebuilding", expect=A_OLD),
    ],
}


def _register(store):
    for letter, node in NODES.items():
        store.set_node(f"cmp{letter}", node, NodeInventory(vcpus=64, memory_mb=262144, local_gb=2000))
    store.set_flavors([OLD, NEW])


def _usage(store):
    usage = {}
    for view in store.node_views():
        letter = view["host"][-1]
        r = view["resources"]
        figures = (r["vcpus"]["used"], r["memory_mb"]["used"], r["local_gb"]["used"], view["running_vms"])
        if figures != (0, 0, 0, 0):
            usage[letter] = figures
    return usage


def _run(store, steps, fmt):
    _register(store)
    for second, step in enumerate(steps, start=1):
        decision = decide.decide(render(step, fmt, "inst-1", second), 1 << 20)
        if decision.event is not None:
            store.apply(decision.event)
        else:  # a legacy error of a function whose failure changes no allocation
            assert (step.is_failure, fmt, decision.kind) == (True, "legacy", decide.IGNORE), decision.reason
        expect = step.expect[fmt] if step.expect and fmt in step.expect else step.expect
        assert _usage(store) == expect, f"after {step.action} from {step.publisher}"
    assert store.audit() == []


@pytest.mark.parametrize("fmt", ["versioned", "legacy"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_lifecycle(store, name, fmt):
    _run(store, SCENARIOS[name], fmt)


@pytest.mark.parametrize("fmt", ["versioned", "legacy"])
@pytest.mark.parametrize("name", sorted(FAILURE_SCENARIOS))
def test_failure(store, name, fmt):
    _run(store, FAILURE_SCENARIOS[name], fmt)


@pytest.mark.parametrize("name", sorted(VERSIONED_ONLY_SCENARIOS))
def test_versioned_only_lifecycle(store, name):
    _run(store, VERSIONED_ONLY_SCENARIOS[name], "versioned")


@pytest.mark.parametrize("fmt", ["versioned", "legacy"])
def test_project_usage_includes_move_holds(store, fmt):
    steps = SCENARIOS["resize_to_another_host_then_confirm"][:3]
    _run(store, steps, fmt)
    (project,) = store.project_usage()
    assert project == {
        "project_id": "proj-1",
        "vcpus": 6,
        "memory_mb": 6144,
        "local_gb": 22 + 46,
        "instances": 1,
    }


@pytest.mark.parametrize("fmt", ["versioned", "legacy"])
def test_failure_arriving_before_the_events_of_its_request(store, fmt):
    """Errors travel on their own queue: the failure may be consumed first. A versioned
    one is parked until an event names its request, then folded in at its time."""
    _register(store)
    steps = FAILURE_SCENARIOS["resize_fails_on_source_frees_the_destination"]
    events = [
        decide.decide(render(step, fmt, "inst-1", second), 1 << 20).event
        for second, step in enumerate(steps, 1)
    ]
    statuses = [store.apply(event).status for event in [events[-1], *events[:-1]]]
    assert statuses[0] == ("parked" if fmt == "versioned" else "unchanged")
    assert _usage(store) == A_OLD
    assert store.audit() == []


@pytest.mark.parametrize("parked_first", [False, True])
def test_a_failure_freeing_a_claim_is_one_info_line(store, caplog, parked_first):
    """Naming the instance, the node freed and Nova's request id; parking is told too."""
    _register(store)
    steps = FAILURE_SCENARIOS["resize_fails_on_source_frees_the_destination"]
    events = [
        decide.decide(render(step, "versioned", "inst-1", second), 1 << 20).event
        for second, step in enumerate(steps, 1)
    ]
    monitor = Monitor(make_conf(), Metrics())
    caplog.set_level(logging.INFO, logger="tracker.bus.consumer")
    for event in [events[-1], *events[:-1]] if parked_first else events:
        monitor.outcome(event, store.apply(event))
    lines = [record.getMessage() for record in caplog.records if record.levelno == logging.INFO]
    freed = f"freed cmpB/{NODES['B']} of instance inst-1, request {RESIZE}"
    if parked_first:
        assert len(lines) == 2, lines
        assert f"no event named its request {RESIZE} yet" in lines[0]
        # adopted by resize_prep.start, before the destination claimed: nothing to free
        assert lines[1].endswith(f", parked until now, freed no node of instance inst-1, request {RESIZE}")
    else:
        (line,) = lines
        assert line.endswith(freed) and " from cmpA at " in line


def test_parked_failures_no_event_names_are_purged(store):
    _register(store)
    step = Step("failure:resize_instance", "A", "A", request="req-x")
    failure = decide.decide(render(step, "versioned", "i", 1), 1 << 20)
    assert store.apply(failure.event).status == "parked"
    store.purge_tombstones(factories.T0)
    assert _parked(store) == 1  # not older than the cutoff
    store.purge_tombstones(factories.T0 + datetime.timedelta(days=1))
    assert _parked(store) == 0


def _parked(store):
    with store.db.transaction() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(ParkedFailure))


@pytest.mark.parametrize(("rounding", "disk"), [("resource_tracker", 20 + 1), ("placement", 20 + 2)])
def test_disk_rounding_of_swap(tmp_path, rounding, disk):
    """OLD has 1536 MiB of swap: Nova's resource tracker counts 1 GiB, Placement 2."""
    conf = make_conf(f"sqlite:///{tmp_path}/t.sqlite", accounting={"disk_rounding": rounding})
    db = Database.from_conf(conf)
    try:
        migration.upgrade(db.engine)
        rounded = Store(db, conf)
        _register(rounded)
        rounded.apply(decide.decide(render(_built()[0], "versioned", "inst-1", 1), 1 << 20).event)
        assert _usage(rounded) == {"A": (2, 2048, disk, 1)}
    finally:
        db.dispose()
