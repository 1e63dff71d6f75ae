"""What the rest of the tracker asks of the database; each call is one transaction
(but a batch holding an event the database refuses, which is split to find it)."""

import dataclasses
import datetime
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
import tenacity
from oslo_config import cfg
from sqlalchemy import orm

from tracker import escape
from tracker.accounting import history
from tracker.db import apply as applying
from tracker.db import flavors, hosts, outbox, quota, requests
from tracker.db import nodes as node_rows
from tracker.db.batch_load import PURGED_BEFORE
from tracker.db.engine import Database, describe
from tracker.db.faults import EnvironmentFaults
from tracker.db.models import (
    AlertOutbox,
    AllocationRow,
    CapacityOutbox,
    ComputeNode,
    Instance,
    ProjectUsage,
    Watermark,
)
from tracker.errors import RefusedEvent
from tracker.events.hosts import AggregateState, HostEvent
from tracker.events.model import Flavor, InstanceEvent
from tracker.retry import db_retrying, is_refused_data

LOG = logging.getLogger(__name__)

Verdict = applying.Outcome | applying.PoisonEvent


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
        self._quota = quota.defaults(conf)
        self._default_zone: str = conf.default_availability_zone
        # lanes waiting on the database (down, a missing table, a revoked grant, a lock)
        self.environment = EnvironmentFaults(describe(db.engine.url))

    def apply_batch(
        self, events: Sequence[InstanceEvent], give_up: Callable[[], bool] | None = None
    ) -> list[Verdict]:
        """Apply ``events`` durably, one verdict per event in the same order.

        One transaction for the whole batch, retried whole from a fresh read
        on any database error but refused data, until stopping or until
        ``give_up()`` (nobody waits for the result any more: the error is
        raised). If the database refuses what an event carries, the batch is
        split in halves until that event is alone: it comes back as a
        :class:`PoisonEvent`, the rest is committed.
        """
        if not events:
            return []
        retrying = self._retrying(give_up)
        try:
            return list(retrying(self._apply_once, events))
        except sqlalchemy.exc.DBAPIError as error:
            if not is_refused_data(error):
                raise
            if len(events) == 1:
                return [_poison(events[0], error)]
            half = len(events) // 2
            return self.apply_batch(events[:half], give_up) + self.apply_batch(events[half:], give_up)
        finally:
            # done, refused or given up: this thread waits on the database no more
            self.environment.clear()

    def _retrying(self, give_up: Callable[[], bool] | None) -> tenacity.Retrying:
        """A worker, which ``stopping`` can stop, waits out every database fault but refused
        data, noting it for the health check; a command (replay) that nothing could stop
        retries only transient ones, and ends with the error."""
        return db_retrying(
            self._conf,
            self._stopping,
            what=f"database {describe(self.db.engine.url)}",
            faults=self.environment if self._stopping is not None else None,
            give_up=give_up,
        )

    def _apply_once(self, events: Sequence[InstanceEvent]) -> list[applying.Outcome]:
        with self.db.connection() as connection:
            return applying.apply_batch(
                connection,
                events,
                self._conf.accounting.history_limit,
                self._defaults,
                quota_limits=self._quota,
                default_zone=self._default_zone,
                rounding=self._conf.accounting.disk_rounding,
            )

    def apply(self, event: InstanceEvent) -> applying.Outcome:
        """One event: :meth:`apply_batch` of one; raises :class:`RefusedEvent` for poison."""
        verdict = self.apply_batch([event])[0]
        if isinstance(verdict, applying.PoisonEvent):
            raise RefusedEvent(verdict.reason)
        return verdict

    def set_node(self, host: str, hypervisor_hostname: str, inventory: NodeInventory) -> dict[str, Any]:
        """Register or change a node's inventory; announces the new capacity."""
        changes = {name: value for name, value in dataclasses.asdict(inventory).items() if value is not None}
        with self.db.connection() as connection:
            before, node = node_rows.register(
                connection, (host, hypervisor_hostname), changes, self._defaults
            )
            outbox.write(connection, [node], [before], self._default_zone)
            return outbox.payloads(connection, [node], self._default_zone)[0]

    def apply_host_event(self, event: HostEvent, give_up: Callable[[], bool] | None = None) -> int:
        """Keep a service's or an aggregate's newest state; announce the nodes of every host
        whose facts changed, with a new generation. Returns how many nodes were announced.

        Database faults are waited out as for instance events (see :meth:`apply_batch`):
        only refused data is the notification's fault."""
        retrying = self._retrying(give_up)
        try:
            return int(retrying(self._apply_host_event_once, event))
        finally:
            self.environment.clear()

    def _apply_host_event_once(self, event: HostEvent) -> int:
        with self.db.connection() as connection:
            if isinstance(event, AggregateState):
                changed = hosts.note_aggregate(connection, event)
            else:
                changed = hosts.note_service(connection, event)
            return len(outbox.announce_hosts(connection, changed, self._default_zone))

    def node_payloads(
        self, names: Sequence[str] = (), part: tuple[int, int] | None = None
    ) -> list[dict[str, Any]]:
        """Current capacity payloads, unlocked: every node, those whose host or nodename is
        in ``names``, or, with ``part=(index, parts)``, the nodes whose id is index mod parts."""
        where: Any = None
        if names:
            table = node_rows.TABLE
            where = sa.or_(table.c.host.in_(names), table.c.hypervisor_hostname.in_(names))
        elif part is not None:
            where = node_rows.TABLE.c.id % part[1] == part[0]
        with self.db.connection() as connection:
            found = [
                node_rows.NodeRecord.from_row(row) for row in connection.execute(node_rows.select(where))
            ]
            return outbox.payloads(connection, found, self._default_zone)

    def set_flavors(self, catalogue: list[Flavor]) -> None:
        """Add or replace flavors; legacy events are completed from them."""
        with self.db.transaction() as session:
            for flavor in catalogue:
                flavors.upsert(session, flavor)

    def flavors(self) -> list[Flavor]:
        with self.db.transaction() as session:
            return flavors.listing(session)

    def node_views(self) -> list[dict[str, Any]]:
        """Every node's payload, by host and nodename (``tracker-status``, snapshots)."""
        return sorted(self.node_payloads(), key=lambda view: (view["host"], view["nodename"]))

    def set_quota(self, project_id: str, limits: dict[str, int]) -> list[dict[str, Any]]:
        """Per-project limits overriding ``[quota]`` (-1: no limit). A limit set under the
        project's usage raises its ``quota.exceeded`` alert now; returns those alerts."""
        with self.db.connection() as connection:
            crossed = quota.set_limits(connection, project_id, limits, self._quota)
            outbox.alert(connection, quota.EVENT_TYPE, crossed)
            return crossed

    def quota_limits(self) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """The ``[quota]`` defaults and the per-project overrides."""
        with self.db.connection() as connection:
            return dict(self._quota), quota.overrides(connection)

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
        """Nodes and projects whose stored counters differ from the sum of their allocations."""
        with self.db.transaction() as session:
            by_node = _allocation_sums(session, AllocationRow.node_id)
            by_project = _allocation_sums(session, AllocationRow.project_id)
            nodes = session.scalars(sa.select(ComputeNode).order_by(ComputeNode.id))
            node_problems = [
                _differs(
                    f"{escape.text(node.host)}/{escape.text(node.hypervisor_hostname)}",
                    (node.vcpus_used, node.memory_mb_used, node.local_gb_used, node.running_vms),
                    by_node.get(node.id, _NOTHING),
                )
                for node in nodes
            ]
            projects = session.scalars(sa.select(ProjectUsage).order_by(ProjectUsage.project_id))
            project_problems = [
                _differs(
                    f"project {escape.text(project.project_id)}",
                    (project.vcpus, project.memory_mb, project.local_gb, project.instances),
                    by_project.get(project.project_id, _NOTHING),
                )
                for project in projects
            ]
            return [problem for problem in (*node_problems, *project_problems) if problem]

    def purge_tombstones(self, deleted_before: datetime.datetime) -> int:
        """Forget instances deleted before ``deleted_before``; returns how many.

        A tombstone is what refuses a late event for a deleted instance; once
        no event can plausibly still be in flight (days, not seconds), it is
        only weight.
        """
        with self.db.connection() as connection:  # its own transaction: it locks no instance
            # failures no event named in all that time never will be
            requests.forget(connection, history.time_text(deleted_before))
        with self.db.transaction() as session:
            result = session.execute(
                sa.delete(Instance)
                .where(Instance.deleted.is_(True), Instance.updated_at < deleted_before)
                .execution_options(synchronize_session=False)
            )
            # Remember the cutoff: an event of an unknown instance older than it
            # may belong to a purged one, and must not bring it back.
            mark = session.get(Watermark, PURGED_BEFORE, with_for_update=True)
            value = history.time_text(deleted_before)
            if mark is None:
                session.add(Watermark(name=PURGED_BEFORE, value=value))
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
        outbox: sa.Table = CapacityOutbox.__table__  # type: ignore[assignment]
        with self.db.transaction() as session:
            query = (
                sa.select(outbox.c.id, outbox.c.node_id, outbox.c.generation, outbox.c.payload)
                .order_by(outbox.c.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
            rows = session.execute(query).all()
            if not rows:
                return 0
            newest: dict[int, Any] = {}
            for row in rows:
                if row.node_id not in newest or row.generation > newest[row.node_id].generation:
                    newest[row.node_id] = row
            publish([json.loads(row.payload) for row in sorted(newest.values(), key=lambda r: r.id)])
            session.execute(sa.delete(outbox).where(outbox.c.id.in_([row.id for row in rows])))
            return len(rows)

    def drain_alerts(
        self, batch_size: int, publish: Callable[[list[tuple[str, dict[str, Any]]]], None]
    ) -> int:
        """Publish pending alerts (event type, payload), every one, then delete them."""
        with self.db.transaction() as session:
            query = (
                sa.select(AlertOutbox)
                .order_by(AlertOutbox.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
            rows = list(session.scalars(query))
            if rows:
                publish([(row.event_type, json.loads(row.payload)) for row in rows])
                session.execute(sa.delete(AlertOutbox).where(AlertOutbox.id.in_([r.id for r in rows])))
            return len(rows)


_NOTHING = (0, 0, 0, 0)


def _allocation_sums(session: orm.Session, key: Any) -> dict[Any, tuple[int, int, int, int]]:
    """(vcpus, memory_mb, local_gb, instances) of the allocation rows, per ``key``."""
    query = sa.select(
        key,
        sa.func.sum(AllocationRow.vcpus),
        sa.func.sum(AllocationRow.memory_mb),
        sa.func.sum(AllocationRow.local_gb),
        sa.func.sum(sa.case((AllocationRow.role == "instance", 1), else_=0)),
    ).group_by(key)
    return {row[0]: (int(row[1]), int(row[2]), int(row[3]), int(row[4])) for row in session.execute(query)}


def _differs(what: str, stored: tuple[int, ...], expected: tuple[int, ...]) -> str | None:
    if tuple(stored) == expected:
        return None
    fields = "(vcpus, memory_mb, local_gb, instances)"
    return f"{what}: stored {fields}={tuple(stored)}, allocations sum to {expected}"


def _poison(event: InstanceEvent, error: sqlalchemy.exc.DBAPIError) -> applying.PoisonEvent:
    first_line = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else ""
    reason = escape.text(f"the database refused it: {type(error.orig).__name__}: {first_line}", 300)
    LOG.error("instance.%s of %r: %s", event.action, event.instance_uuid, reason)
    return applying.PoisonEvent(reason)
