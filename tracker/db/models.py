"""Tables. Node usage counters are the sum of the node's allocations; the
audit (``tracker-manage audit``) checks that they are."""

import datetime

import sqlalchemy as sa
from sqlalchemy import orm

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(orm.DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


# Usage sums: 64-bit. SQLite's INTEGER already stores 64 bits, and declaring it
# INTEGER there spares a table rebuild that its foreign keys would refuse.
Counter = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class ComputeNode(Base):
    """A Nova compute node (host + hypervisor_hostname) and its usage.

    Inventory totals are NULL while nobody registered the node: it was
    created by an event, and still counts usage.
    """

    __tablename__ = "compute_nodes"
    __table_args__ = (sa.UniqueConstraint("host", "hypervisor_hostname"),)

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    # The tracker's own id of the node, stable for its life (instance
    # notifications do not carry Nova's compute node uuid).
    uuid: orm.Mapped[str] = orm.mapped_column(sa.String(36), unique=True)
    host: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    hypervisor_hostname: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    vcpus: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    memory_mb: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    local_gb: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    reserved_vcpus: orm.Mapped[int] = orm.mapped_column(sa.Integer)
    reserved_memory_mb: orm.Mapped[int] = orm.mapped_column(sa.Integer)
    reserved_local_gb: orm.Mapped[int] = orm.mapped_column(sa.Integer)
    cpu_allocation_ratio: orm.Mapped[float] = orm.mapped_column(sa.Float)
    ram_allocation_ratio: orm.Mapped[float] = orm.mapped_column(sa.Float)
    disk_allocation_ratio: orm.Mapped[float] = orm.mapped_column(sa.Float)
    vcpus_used: orm.Mapped[int] = orm.mapped_column(Counter, default=0)
    memory_mb_used: orm.Mapped[int] = orm.mapped_column(Counter, default=0)
    local_gb_used: orm.Mapped[int] = orm.mapped_column(Counter, default=0)
    running_vms: orm.Mapped[int] = orm.mapped_column(Counter, default=0)
    generation: orm.Mapped[int] = orm.mapped_column(sa.BigInteger, default=0)
    # Created for a move's destination known only by host (named after the
    # host); a real node of that host is preferred as soon as one exists.
    placeholder: orm.Mapped[bool] = orm.mapped_column(sa.Boolean, server_default=sa.false(), default=False)
    updated_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        sa.DateTime, default=_utcnow, onupdate=_utcnow
    )


class Instance(Base):
    """One instance: its folded snapshot (``base_state``) plus a summary for humans.

    Kept after delete as a tombstone, so that a late event cannot resurrect it.
    """

    __tablename__ = "instances"

    uuid: orm.Mapped[str] = orm.mapped_column(sa.String(36), primary_key=True)
    project_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    host: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    node: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    vm_state: orm.Mapped[str | None] = orm.mapped_column(sa.String(32))
    task_state: orm.Mapped[str | None] = orm.mapped_column(sa.String(64))
    deleted: orm.Mapped[bool] = orm.mapped_column(sa.Boolean, default=False)
    # snapshot the kept events fold onto, and the state after all of them
    base_state: orm.Mapped[str] = orm.mapped_column(sa.Text)
    state: orm.Mapped[str] = orm.mapped_column(sa.Text, server_default="")
    event_count: orm.Mapped[int] = orm.mapped_column(sa.Integer, server_default="0")
    updated_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        sa.DateTime, default=_utcnow, onupdate=_utcnow
    )


class InstanceEventRow(Base):
    """The recent events of an instance, from which its state is re-derived."""

    __tablename__ = "instance_events"
    __table_args__ = (
        sa.UniqueConstraint("instance_uuid", "message_id"),
        sa.Index("ix_instance_events_instance_uuid_dedupe_key", "instance_uuid", "dedupe_key"),
    )

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), sa.ForeignKey("instances.uuid", ondelete="CASCADE"), index=True
    )
    message_id: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    dedupe_key: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    # Fixed-width ISO text: sorts correctly and keeps microseconds on every backend.
    timestamp: orm.Mapped[str] = orm.mapped_column(sa.String(26))
    data: orm.Mapped[str] = orm.mapped_column(sa.Text)


class AllocationRow(Base):
    """What one instance holds on one node in one role (instance, move_dest, move_source)."""

    __tablename__ = "allocations"

    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), sa.ForeignKey("instances.uuid", ondelete="CASCADE"), primary_key=True
    )
    node_id: orm.Mapped[int] = orm.mapped_column(
        sa.Integer, sa.ForeignKey("compute_nodes.id"), primary_key=True, index=True
    )
    role: orm.Mapped[str] = orm.mapped_column(sa.String(16), primary_key=True)
    project_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    vcpus: orm.Mapped[int] = orm.mapped_column(Counter)
    memory_mb: orm.Mapped[int] = orm.mapped_column(Counter)
    local_gb: orm.Mapped[int] = orm.mapped_column(Counter)


class ProjectUsage(Base):
    """Per-project sums of allocations, updated in the same transaction."""

    __tablename__ = "project_usage"

    project_id: orm.Mapped[str] = orm.mapped_column(sa.String(255), primary_key=True)
    vcpus: orm.Mapped[int] = orm.mapped_column(Counter, default=0)
    memory_mb: orm.Mapped[int] = orm.mapped_column(Counter, default=0)
    local_gb: orm.Mapped[int] = orm.mapped_column(Counter, default=0)
    instances: orm.Mapped[int] = orm.mapped_column(Counter, default=0)


class FlavorRow(Base):
    """The flavor catalogue: what legacy payloads do not say (swap, a new flavor's sizes)."""

    __tablename__ = "flavors"

    flavorid: orm.Mapped[str] = orm.mapped_column(sa.String(255), primary_key=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(255), unique=True)
    vcpus: orm.Mapped[int] = orm.mapped_column(sa.Integer)
    memory_mb: orm.Mapped[int] = orm.mapped_column(sa.Integer)
    root_gb: orm.Mapped[int] = orm.mapped_column(sa.Integer)
    ephemeral_gb: orm.Mapped[int] = orm.mapped_column(sa.Integer)
    swap: orm.Mapped[int] = orm.mapped_column(sa.Integer)


class Watermark(Base):
    """A named point in time; ``tombstones_purged_before`` guards purged instances."""

    __tablename__ = "watermarks"

    name: orm.Mapped[str] = orm.mapped_column(sa.String(64), primary_key=True)
    value: orm.Mapped[str] = orm.mapped_column(sa.String(26))


class CapacityOutbox(Base):
    """Capacity notifications written with the usage change, published after commit."""

    __tablename__ = "capacity_outbox"

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    node_id: orm.Mapped[int] = orm.mapped_column(sa.Integer, index=True)
    generation: orm.Mapped[int] = orm.mapped_column(sa.BigInteger)
    payload: orm.Mapped[str] = orm.mapped_column(sa.Text)
    created_at: orm.Mapped[datetime.datetime] = orm.mapped_column(sa.DateTime, default=_utcnow)


class InstanceRequest(Base):
    """Which instances a Nova request id (``req-…``) acted on, from the resize events
    that carry it: a versioned ``compute.exception`` names its request, not its instance."""

    __tablename__ = "instance_requests"

    request_id: orm.Mapped[str] = orm.mapped_column(sa.String(64), primary_key=True)
    instance_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), sa.ForeignKey("instances.uuid", ondelete="CASCADE"), primary_key=True
    )


class NovaRequest(Base):
    """One row per Nova request id a failure or a resize event carried: the lock that
    serializes, across workers, parking a failure and the events that adopt it."""

    __tablename__ = "nova_requests"

    request_id: orm.Mapped[str] = orm.mapped_column(sa.String(64), primary_key=True)
    # the notification time it was first seen with: ``tracker-manage purge`` forgets old ones
    first_seen: orm.Mapped[str] = orm.mapped_column(sa.String(26))


class ParkedFailure(Base):
    """A ``compute.exception`` whose request no instance event has named yet.

    It came before the events of its action (Nova publishes errors and infos
    on two queues): the first event naming the request adopts it.
    """

    __tablename__ = "parked_failures"

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    request_id: orm.Mapped[str] = orm.mapped_column(sa.String(64), index=True)
    message_id: orm.Mapped[str] = orm.mapped_column(sa.String(64), unique=True)
    timestamp: orm.Mapped[str] = orm.mapped_column(sa.String(26))
    data: orm.Mapped[str] = orm.mapped_column(sa.Text)


class HostService(Base):
    """A nova-compute service as its ``service.update`` notifications describe it."""

    __tablename__ = "host_services"

    host: orm.Mapped[str] = orm.mapped_column(sa.String(255), primary_key=True)
    disabled: orm.Mapped[bool] = orm.mapped_column(sa.Boolean)
    disabled_reason: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    forced_down: orm.Mapped[bool] = orm.mapped_column(sa.Boolean)
    availability_zone: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    # Nova's notification time (fixed-width text): an older one changes nothing
    noted_at: orm.Mapped[str] = orm.mapped_column(sa.String(26))


class Aggregate(Base):
    """A host aggregate as its last ``aggregate.*.end`` notification described it."""

    __tablename__ = "aggregates"

    uuid: orm.Mapped[str] = orm.mapped_column(sa.String(36), primary_key=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    availability_zone: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    # kept after delete, so that a late notification cannot bring it back
    deleted: orm.Mapped[bool] = orm.mapped_column(sa.Boolean)
    noted_at: orm.Mapped[str] = orm.mapped_column(sa.String(26))


class AggregateHost(Base):
    __tablename__ = "aggregate_hosts"

    aggregate_uuid: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), sa.ForeignKey("aggregates.uuid", ondelete="CASCADE"), primary_key=True
    )
    host: orm.Mapped[str] = orm.mapped_column(sa.String(255), primary_key=True, index=True)


class ProjectQuota(Base):
    """A per-project limit that overrides the ``[quota]`` default (``tracker-manage quota set``)."""

    __tablename__ = "project_quotas"

    project_id: orm.Mapped[str] = orm.mapped_column(sa.String(255), primary_key=True)
    resource: orm.Mapped[str] = orm.mapped_column(sa.String(32), primary_key=True)
    # -1: no limit
    limit: orm.Mapped[int] = orm.mapped_column(sa.BigInteger)


class AlertOutbox(Base):
    """Over-commit and quota alerts written with the change that crossed the line, published
    after commit (every one: unlike capacity updates they do not supersede each other)."""

    __tablename__ = "alert_outbox"

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    event_type: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    payload: orm.Mapped[str] = orm.mapped_column(sa.Text)
    created_at: orm.Mapped[datetime.datetime] = orm.mapped_column(sa.DateTime, default=_utcnow)
