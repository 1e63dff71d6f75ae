"""The pure history fold: what one more event does to an instance's kept history."""

import dataclasses

from tests import factories
from tracker.accounting import allocations, history
from tracker.accounting.state import RESIZE, InstanceState, Location, Move

PURGED = "2026-08-21T21:00:30.000000"


def _fresh(uuid="inst-1"):
    return history.Record(uuid, InstanceState(uuid=uuid), None)


def test_an_unknown_instance_older_than_the_last_purge_is_taken_for_a_purged_one():
    admission = history.admit(_fresh(), factories.event("update", 3), PURGED, limit=8, ordinal=0)
    assert admission.verdict == history.AFTER_DELETE
    assert admission.record.is_new


def test_an_instance_with_a_stored_snapshot_but_no_current_state_is_not_new():
    """Rows written before migration 0003 kept only the snapshot."""
    record = history.Record("inst-1", InstanceState(uuid="inst-1"), None, base_stored=True)
    admission = history.admit(record, factories.event("create.end", 3), PURGED, limit=8, ordinal=0)
    assert admission.verdict is None
    assert admission.record.current is not None and admission.record.current.location is not None


def test_fold_keeps_new_events_in_arrival_order_and_compacts_past_the_limit():
    records = {"inst-1": _fresh()}
    events = [factories.event("power_on.end" if s % 2 else "power_off.end", s) for s in range(1, 10)]
    steps = history.fold(records, events, None, limit=4)
    assert [step.verdict for step in steps] == [None] * 9
    assert len(records["inst-1"].kept) <= 4
    assert records["inst-1"].base.last_timestamp is not None
    assert history.fold(records, [events[0]], None, limit=4)[0].verdict == history.STALE


def test_what_an_instance_holds_depends_only_on_the_fields_allocations_inputs_names():
    """Step.moves takes equal inputs for equal holdings without deriving them."""
    source, dest = Location("src", "src.node"), Location("dst", "dst.node")
    old, new = factories.flavor(), factories.flavor(vcpus=8)
    move = Move(RESIZE, source, dest, old, new, switched=True, request_id="req-1")
    state = InstanceState(
        "inst-1", "p1", dest, new, move=move, last_timestamp=factories.event("update", 1).timestamp
    )
    others = {
        "uuid": "inst-2",
        "project_id": "p2",
        "vm_state": "resized",
        "task_state": "resize_finish",
        "last_timestamp": None,
        "failed_request": "req-2",
        "failed_move": move,
    }
    assert {field.name for field in dataclasses.fields(InstanceState)} == {
        *others,
        "deleted",
        "move",
        "location",
        "flavor",
        "boot_from_volume",
    }
    changed = dataclasses.replace(state, **others)
    assert allocations.inputs(changed) == allocations.inputs(state)
    assert allocations.allocations(changed) == allocations.allocations(state) != ()
