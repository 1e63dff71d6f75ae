"""Write what a batch changed: one multi-row statement per table.

Node counters are added under the generation compare-and-swap, as
Placement does: the rows are locked already, and the CAS makes a lost race
a retried transaction rather than a lost update whatever the isolation.
Project rows are created or added to in project order, the last locks taken.
"""

import dataclasses
import json
from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from tracker.accounting import codec
from tracker.accounting.history import Record
from tracker.db import upsert
from tracker.db.anyof import any_of
from tracker.db.batch_load import ALLOCATIONS, EVENTS, INSTANCES
from tracker.db.holdings import Change, Plan
from tracker.db.models import ProjectUsage
from tracker.db.nodes import TABLE as NODES
from tracker.db.nodes import NodeKey, NodeRecord
from tracker.errors import ConcurrentUpdate

_PROJECTS: sa.Table = ProjectUsage.__table__  # type: ignore[assignment]
_COUNTERS = ("vcpus", "memory_mb", "local_gb", "instances")


def histories(connection: sa.Connection, before: Mapping[str, Record], after: Mapping[str, Record]) -> None:
    """Kept events and instance rows; a row made for events that all turned out to
    belong to a purged instance is dropped again."""
    changed = [uuid for uuid, record in after.items() if record is not before[uuid]]
    _insert_events(connection, [after[uuid] for uuid in changed])
    _delete_events(connection, [before[uuid] for uuid in changed], [after[uuid] for uuid in changed])
    _update_instances(connection, [after[uuid] for uuid in changed if not after[uuid].is_new])
    dropped = [uuid for uuid, record in after.items() if record.is_new]
    if dropped:
        connection.execute(sa.delete(INSTANCES).where(any_of(connection, INSTANCES.c.uuid, dropped)))


def _insert_events(connection: sa.Connection, records: Iterable[Record]) -> None:
    rows = [
        {
            "instance_uuid": record.uuid,
            "message_id": kept.message_id,
            "dedupe_key": kept.dedupe_key,
            "timestamp": kept.time,
            "data": json.dumps(codec.dump(kept.event)),
        }
        for record in records
        for kept in sorted(record.kept, key=lambda k: k.order)
        if kept.row_id is None
    ]
    if rows:
        connection.execute(EVENTS.insert(), rows)


def _delete_events(connection: sa.Connection, before: Iterable[Record], after: Iterable[Record]) -> None:
    """Stored events folded into the snapshot."""
    remaining = {kept.row_id for record in after for kept in record.kept}
    stored = {kept.row_id for record in before for kept in record.kept} - remaining
    folded = sorted(row_id for row_id in stored if row_id is not None)
    if folded:
        connection.execute(sa.delete(EVENTS).where(any_of(connection, EVENTS.c.id, folded)))


def _update_instances(connection: sa.Connection, records: Iterable[Record]) -> None:
    """The new state, snapshot and event count; the summary columns are for humans."""
    rows = [_instance_row(record) for record in sorted(records, key=lambda r: r.uuid)]
    if not rows:
        return
    statement = (
        sa.update(INSTANCES)
        .where(INSTANCES.c.uuid == sa.bindparam("key"))
        .values({name: sa.bindparam(name) for name in rows[0] if name != "key"})
    )
    connection.execute(statement, rows)


def _instance_row(record: Record) -> dict[str, object]:
    state = record.current
    location = state.location if state else None
    return {
        "key": record.uuid,
        "state": json.dumps(codec.dump(state)),
        "base_state": json.dumps(codec.dump(record.base)),
        "event_count": len(record.kept),
        "project_id": state.project_id if state else None,
        "host": location.host if location else None,
        "node": location.node if location else None,
        "vm_state": state.vm_state if state else None,
        "task_state": state.task_state if state else None,
        "deleted": state.deleted if state else False,
    }


def allocations(connection: sa.Connection, plan: Plan, ids: Mapping[NodeKey, int]) -> None:
    """Replace the rows of every instance whose holdings changed."""
    if not plan.holdings:
        return
    uuids = sorted(plan.holdings)
    connection.execute(sa.delete(ALLOCATIONS).where(any_of(connection, ALLOCATIONS.c.instance_uuid, uuids)))
    rows = [
        {
            "instance_uuid": uuid,
            "node_id": ids[node],
            "role": role,
            "project_id": plan.owners[uuid],
            "vcpus": usage.vcpus,
            "memory_mb": usage.memory_mb,
            "local_gb": usage.local_gb,
        }
        for uuid in uuids
        for (node, role), usage in sorted(plan.holdings[uuid].items())
    ]
    if rows:
        connection.execute(ALLOCATIONS.insert(), rows)


def nodes(connection: sa.Connection, locked: Mapping[NodeKey, NodeRecord], plan: Plan) -> list[NodeRecord]:
    """Add each node's change and bump its generation, only if nobody bumped it first.

    Returns the nodes as they are now, for their capacity notifications.
    """
    before = [locked[key] for key in sorted(plan.nodes)]
    updated = [_updated(node, plan.nodes[node.key]) for node in before]
    if not updated:
        return []
    statement = (
        sa.update(NODES)
        .where(NODES.c.id == sa.bindparam("key"), NODES.c.generation == sa.bindparam("expected"))
        .values(
            vcpus_used=sa.bindparam("vcpus_used"),
            memory_mb_used=sa.bindparam("memory_mb_used"),
            local_gb_used=sa.bindparam("local_gb_used"),
            running_vms=sa.bindparam("running_vms"),
            generation=sa.bindparam("generation"),
        )
    )
    result = connection.execute(
        statement, [_cas_row(old, new) for old, new in zip(before, updated, strict=True)]
    )
    # Each row matches at most one node (by id), so the sum is the proof for all of them.
    if result.rowcount != len(updated):
        raise ConcurrentUpdate(
            f"{len(updated) - result.rowcount} compute node(s) changed generation under us"
        )
    return updated


def _updated(node: NodeRecord, change: Change) -> NodeRecord:
    used, vms = change
    return dataclasses.replace(
        node,
        vcpus_used=node.vcpus_used + used.vcpus,
        memory_mb_used=node.memory_mb_used + used.memory_mb,
        local_gb_used=node.local_gb_used + used.local_gb,
        running_vms=node.running_vms + vms,
        generation=node.generation + 1,
    )


def _cas_row(old: NodeRecord, node: NodeRecord) -> dict[str, int]:
    return {
        "key": node.id,
        "expected": old.generation,
        "vcpus_used": node.vcpus_used,
        "memory_mb_used": node.memory_mb_used,
        "local_gb_used": node.local_gb_used,
        "running_vms": node.running_vms,
        "generation": node.generation,
    }


def projects(connection: sa.Connection, plan: Plan) -> None:
    rows = [
        {
            "project_id": project_id,
            "vcpus": used.vcpus,
            "memory_mb": used.memory_mb,
            "local_gb": used.local_gb,
            "instances": instances,
        }
        for project_id, (used, instances) in sorted(plan.projects.items())
    ]
    upsert.insert_adding(connection, _PROJECTS, rows, _COUNTERS)
