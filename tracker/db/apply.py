"""The one transaction that applies an instance event.

Order of locks, the same in every worker: the instance row, then the touched
node rows sorted by id. Generations are compare-and-swapped on top of the row
locks, as Placement does, so correctness never depends on how many workers run.
"""

import dataclasses

from sqlalchemy import orm

from tracker.accounting import allocations as alloc
from tracker.accounting.state import InstanceState, Location
from tracker.accounting.usage import Usage
from tracker.db import flavors, nodes, usage
from tracker.db import history as hist
from tracker.db.missing import MissingRows
from tracker.db.models import ComputeNode, Watermark
from tracker.events.model import InstanceEvent

APPLIED = "applied"
UNCHANGED = "unchanged"
DUPLICATE = "duplicate"
STALE = "stale"
AFTER_DELETE = "after_delete"
PURGED_BEFORE = "tombstones_purged_before"


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: str
    changed_nodes: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class PoisonEvent:
    """The database refused this event for its own content: it is set aside, the rest count."""

    reason: str


def apply_event(session: orm.Session, event: InstanceEvent, history_limit: int) -> Outcome:
    history = hist.lock(session, event.instance_uuid)
    event = flavors.complete(session, event)
    if hist.knows(session, event.instance_uuid, event):
        return Outcome(DUPLICATE)
    if history.base.deleted:
        return Outcome(AFTER_DELETE)  # the tombstone: nothing resurrects an instance
    if history.is_new and _purged(session, event):
        session.delete(history.record)  # the row created for this event: drop it again
        return Outcome(AFTER_DELETE)
    if history.is_stale(event):
        return Outcome(STALE)
    state = hist.derive(session, history, event)
    changed = _reallocate(session, history.current, state)
    hist.record(session, history, event, state)
    hist.compact(session, history, state, history_limit)
    return Outcome(APPLIED if changed else UNCHANGED, changed)


def _purged(session: orm.Session, event: InstanceEvent) -> bool:
    """An unknown instance whose event predates the last purge may be a purged tombstone."""
    mark = session.get(Watermark, PURGED_BEFORE)
    return mark is not None and hist.stored_time(event) <= mark.value


def _reallocate(session: orm.Session, before: InstanceState | None, after: InstanceState) -> tuple[int, ...]:
    """Move the instance's holdings if its allocations changed; most events change none."""
    if before is not None and alloc.allocations(before) == alloc.allocations(after):
        return ()
    old = usage.current_holdings(session, after.uuid)
    new = _resolve(session, alloc.allocations(after), old)
    return _apply_holdings(session, after, old, new)


def _apply_holdings(
    session: orm.Session,
    state: InstanceState,
    old: usage.Holdings,
    new: usage.Holdings,
) -> tuple[int, ...]:
    if old == new:
        return ()
    deltas = usage.node_deltas(old, new)
    # Lock every node the allocation rows point at, not only those whose totals
    # change: rewriting a row makes its foreign-key check take a share lock on
    # the node, and that lock too must come in id order.
    locked = nodes.lock(session, {node for node, _role in [*old, *new]})
    usage.update_nodes(session, locked, deltas)
    usage.replace_allocations(session, state.uuid, state.project_id, new)
    usage.update_project(session, state.project_id, old, new)
    usage.write_outbox(session, {node: locked[node] for node in deltas})
    return tuple(sorted(deltas))


def _resolve(
    session: orm.Session, held: tuple[alloc.Allocation, ...], old: usage.Holdings
) -> dict[tuple[int, str], Usage]:
    """Allocations keyed by node id; raises MissingRows for nodes not created yet."""
    known = _hosts_of(session, old)
    resolved: dict[tuple[int, str], Usage] = {}
    missing: list[Location] = []
    for allocation in held:
        node_id = nodes.resolve(session, allocation.location, known)
        if node_id is None:
            missing.append(allocation.location)
        else:
            resolved[(node_id, allocation.role)] = allocation.usage
    if missing:
        raise MissingRows(locations=missing)
    return resolved


def _hosts_of(session: orm.Session, old: usage.Holdings) -> dict[str, int]:
    result: dict[str, int] = {}
    for node_id, _role in old:
        node = session.get(ComputeNode, node_id)
        if node is not None:
            result.setdefault(node.host, node_id)
    return result
