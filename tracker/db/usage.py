"""Apply an instance's allocation change to node and project counters, with a CAS."""

import collections
import json
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy import orm

from tracker.accounting.allocations import INSTANCE
from tracker.accounting.usage import ZERO, Usage
from tracker.db import capacity
from tracker.db.missing import MissingRows
from tracker.db.models import Allocation, CapacityOutbox, ComputeNode, ProjectUsage
from tracker.errors import ConcurrentUpdate

# (node_id, role) -> usage
Holdings = Mapping[tuple[int, str], Usage]


def current_holdings(session: orm.Session, instance_uuid: str) -> dict[tuple[int, str], Usage]:
    rows = session.scalars(sa.select(Allocation).where(Allocation.instance_uuid == instance_uuid))
    return {(r.node_id, r.role): Usage(r.vcpus, r.memory_mb, r.local_gb) for r in rows}


def node_deltas(old: Holdings, new: Holdings) -> dict[int, tuple[Usage, int]]:
    """Per node: usage change and running_vms change; nodes left unchanged are absent."""
    deltas: dict[int, tuple[Usage, int]] = collections.defaultdict(lambda: (ZERO, 0))
    for sign, holdings in ((-1, old), (1, new)):
        for (node_id, role), usage in holdings.items():
            used, vms = deltas[node_id]
            change = usage if sign > 0 else -usage
            deltas[node_id] = (used + change, vms + sign * (role == INSTANCE))
    return {node: d for node, d in deltas.items() if d != (ZERO, 0)}


def update_nodes(
    session: orm.Session, locked: Mapping[int, ComputeNode], deltas: Mapping[int, tuple[Usage, int]]
) -> None:
    """Add each delta and bump the generation, only if nobody else bumped it first."""
    for node_id, (change, vms) in sorted(deltas.items()):
        node = locked[node_id]
        result = session.execute(
            sa.update(ComputeNode)
            .where(ComputeNode.id == node_id, ComputeNode.generation == node.generation)
            .values(
                vcpus_used=ComputeNode.vcpus_used + change.vcpus,
                memory_mb_used=ComputeNode.memory_mb_used + change.memory_mb,
                local_gb_used=ComputeNode.local_gb_used + change.local_gb,
                running_vms=ComputeNode.running_vms + vms,
                generation=ComputeNode.generation + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentUpdate(f"compute node {node_id} changed generation under us")
        session.refresh(node)


def write_outbox(session: orm.Session, nodes: Mapping[int, ComputeNode]) -> None:
    """Capacity notifications, committed with the change they announce."""
    for node in nodes.values():
        session.add(
            CapacityOutbox(
                node_id=node.id,
                generation=node.generation,
                payload=json.dumps(capacity.payload(node), sort_keys=True),
            )
        )


def replace_allocations(
    session: orm.Session, instance_uuid: str, project_id: str | None, new: Holdings
) -> None:
    session.execute(sa.delete(Allocation).where(Allocation.instance_uuid == instance_uuid))
    for (node_id, role), usage in sorted(new.items()):
        session.add(
            Allocation(
                instance_uuid=instance_uuid,
                node_id=node_id,
                role=role,
                project_id=project_id,
                vcpus=usage.vcpus,
                memory_mb=usage.memory_mb,
                local_gb=usage.local_gb,
            )
        )


def update_project(session: orm.Session, project_id: str | None, old: Holdings, new: Holdings) -> None:
    """Project totals include move holds, as Placement usages do."""
    if project_id is None:
        return
    change = _total(new) - _total(old)
    instances = _instance_count(new) - _instance_count(old)
    row = session.get(ProjectUsage, project_id, with_for_update=True)
    if row is None:
        raise MissingRows(projects=[project_id])
    row.vcpus += change.vcpus
    row.memory_mb += change.memory_mb
    row.local_gb += change.local_gb
    row.instances += instances


def _total(holdings: Holdings) -> Usage:
    return sum(holdings.values(), ZERO)


def _instance_count(holdings: Holdings) -> int:
    return sum(1 for (_node, role) in holdings if role == INSTANCE)
