"""What the rest of the tracker asks of the database; each call is one transaction."""

import dataclasses
import datetime
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg

from tracker.accounting.state import Location
from tracker.db import apply as applying
from tracker.db import capacity as node_capacity
from tracker.db import flavors, missing, usage
from tracker.db import nodes as node_rows
from tracker.db.engine import Database
from tracker.db.models import Allocation, CapacityOutbox, ComputeNode, Instance, ProjectUsage, Watermark
from tracker.errors import ConcurrentUpdate
from tracker.events.model import Flavor, InstanceEvent
from tracker.retry import db_retrying, is_transient_db_error

# Instance row, node rows, project row: each may need creating once.
_MAX_CREATION_ROUNDS = 4


@dataclasses.dataclass(frozen=True)
class NodeInventory:
    """What an operator registers with ``tracker-manage node set``; None keeps the current value."""

    vcpus: int | None = None
    memory_mb: int | None = None
    local_gb: int | None = None
    reserved_vcpus: int | None = None
    reserved_memory_mb: int | None = None
    reserved_local_gb: int | None = None
    cpu_allocation_ratio: float | None = None
    ram_allocation_ratio: float | None = None
    disk_allocation_ratio: float | None = None


class Store:
    def __init__(self, db: Database, conf: cfg.ConfigOpts, stopping: threading.Event | None = None) -> None:
        self.db = db
        self._conf = conf
        self._stopping = stopping
        self._defaults = node_rows.InventoryDefaults.from_conf(conf)

    def apply(self, event: InstanceEvent) -> applying.Outcome:
        """Apply one event durably, retrying transient faults (until stopping)."""
        return db_retrying(self._conf, self._stopping)(self._apply_once, event)

    def apply_batch(self, events: Sequence[InstanceEvent]) -> list[applying.Outcome | applying.PoisonEvent]:
        """Apply each event durably; one the database refuses is reported, not raised.

        Transient faults are retried until stopping, then raised: what was
        not acknowledged is redelivered, and applying it again changes nothing.
        """
        results: list[applying.Outcome | applying.PoisonEvent] = []
        for event in events:
            try:
                results.append(self.apply(event))
            except Exception as error:
                if is_transient_db_error(error):
                    raise
                results.append(applying.PoisonEvent(f"{type(error).__name__}: {error}"))
        return results

    def _apply_once(self, event: InstanceEvent) -> applying.Outcome:
        limit = self._conf.accounting.history_limit
        for _ in range(_MAX_CREATION_ROUNDS):
            try:
                with self.db.transaction() as session:
                    return applying.apply_event(session, event, limit)
            except missing.MissingRows as needed:
                missing.create(self.db, needed, self._defaults)
        raise ConcurrentUpdate(f"rows for instance {event.instance_uuid} keep disappearing")

    def set_node(self, host: str, hypervisor_hostname: str, inventory: NodeInventory) -> dict[str, Any]:
        """Register or change a node's inventory; announces the new capacity."""
        creation = missing.MissingRows(locations=[Location(host, hypervisor_hostname)])
        missing.create(self.db, creation, self._defaults)
        with self.db.transaction() as session:
            node = node_rows.find(session, host, hypervisor_hostname)
            if node is None:
                raise ConcurrentUpdate(f"compute node {host}/{hypervisor_hostname} vanished")
            locked = node_rows.lock(session, [node.id])[node.id]
            for name, value in dataclasses.asdict(inventory).items():
                if value is not None:
                    setattr(locked, name, value)
            locked.placeholder = False  # an operator registered it: it is real
            locked.generation += 1
            session.flush()
            usage.write_outbox(session, {locked.id: locked})
            return node_capacity.payload(locked)

    def set_flavors(self, catalogue: list[Flavor]) -> None:
        """Add or replace flavors; legacy events are completed from them."""
        with self.db.transaction() as session:
            for flavor in catalogue:
                flavors.upsert(session, flavor)

    def flavors(self) -> list[Flavor]:
        with self.db.transaction() as session:
            return flavors.listing(session)

    def node_views(self) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            query = sa.select(ComputeNode).order_by(ComputeNode.host, ComputeNode.hypervisor_hostname)
            return [node_capacity.payload(node) for node in session.scalars(query)]

    def project_usage(self) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            rows = session.scalars(sa.select(ProjectUsage).order_by(ProjectUsage.project_id))
            return [
                {
                    "project_id": r.project_id,
                    "vcpus": r.vcpus,
                    "memory_mb": r.memory_mb,
                    "local_gb": r.local_gb,
                    "instances": r.instances,
                }
                for r in rows
            ]

    def audit(self) -> list[str]:
        """Nodes whose stored counters differ from the sum of their allocations."""
        with self.db.transaction() as session:
            sums = {
                row.node_id: row
                for row in session.execute(
                    sa.select(
                        Allocation.node_id,
                        sa.func.sum(Allocation.vcpus).label("vcpus"),
                        sa.func.sum(Allocation.memory_mb).label("memory_mb"),
                        sa.func.sum(Allocation.local_gb).label("local_gb"),
                        sa.func.sum(sa.case((Allocation.role == "instance", 1), else_=0)).label("vms"),
                    ).group_by(Allocation.node_id)
                )
            }
            return [
                problem
                for node in session.scalars(sa.select(ComputeNode).order_by(ComputeNode.id))
                if (problem := _audit_node(node, sums.get(node.id)))
            ]

    def purge_tombstones(self, deleted_before: datetime.datetime) -> int:
        """Forget instances deleted before ``deleted_before``; returns how many.

        A tombstone is what refuses a late event for a deleted instance; once
        no event can plausibly still be in flight (days, not seconds), it is
        only weight.
        """
        with self.db.transaction() as session:
            result = session.execute(
                sa.delete(Instance)
                .where(Instance.deleted.is_(True), Instance.updated_at < deleted_before)
                .execution_options(synchronize_session=False)
            )
            # Remember the cutoff: an event of an unknown instance older than it
            # may belong to a purged one, and must not bring it back.
            mark = session.get(Watermark, applying.PURGED_BEFORE, with_for_update=True)
            value = deleted_before.strftime("%Y-%m-%dT%H:%M:%S.%f")
            if mark is None:
                session.add(Watermark(name=applying.PURGED_BEFORE, value=value))
            else:
                mark.value = max(mark.value, value)
            return int(result.rowcount)  # type: ignore[attr-defined]

    def drain_outbox(self, batch_size: int, publish: Callable[[list[dict[str, Any]]], None]) -> int:
        """Publish pending capacity notifications, then delete them, in one transaction.

        Rows are claimed with SKIP LOCKED, so relays of several workers share
        the work. Per node only the newest generation is published: payloads
        are absolute, older ones say nothing more. If ``publish`` fails the
        rows stay for the next round.
        """
        with self.db.transaction() as session:
            query = (
                sa.select(CapacityOutbox)
                .order_by(CapacityOutbox.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
            rows = list(session.scalars(query))
            if not rows:
                return 0
            newest: dict[int, CapacityOutbox] = {}
            for row in rows:
                if row.node_id not in newest or row.generation > newest[row.node_id].generation:
                    newest[row.node_id] = row
            publish([json.loads(row.payload) for row in sorted(newest.values(), key=lambda r: r.id)])
            session.execute(sa.delete(CapacityOutbox).where(CapacityOutbox.id.in_([r.id for r in rows])))
            return len(rows)


def _audit_node(node: ComputeNode, total: Any) -> str | None:
    expected = (
        (int(total.vcpus), int(total.memory_mb), int(total.local_gb), int(total.vms))
        if total is not None
        else (0, 0, 0, 0)
    )
    stored = (node.vcpus_used, node.memory_mb_used, node.local_gb_used, node.running_vms)
    if stored == expected:
        return None
    return (
        f"{node.host}/{node.hypervisor_hostname}: stored (vcpus, memory_mb, local_gb, running_vms)"
        f"={stored}, allocations sum to {expected}"
    )
