"""Compute node rows: defaults of a new node, creation, locking."""

import dataclasses
import math
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg

from tracker.db import upsert
from tracker.db.anyof import any_of
from tracker.db.models import ComputeNode
from tracker.errors import ConfigError

TABLE: sa.Table = ComputeNode.__table__  # type: ignore[assignment]

# (host, hypervisor_hostname): how events name a node, before its id is known
NodeKey = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class InventoryDefaults:
    """Reserved amounts and ratios a node gets when not given explicitly."""

    reserved_vcpus: int = 0
    reserved_memory_mb: int = 512
    reserved_local_gb: int = 0
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> "InventoryDefaults":
        group = conf.accounting
        for ratio in (
            "initial_cpu_allocation_ratio",
            "initial_ram_allocation_ratio",
            "initial_disk_allocation_ratio",
        ):
            if not valid_ratio(group[ratio]):
                raise ConfigError(f"[accounting] {ratio} {group[ratio]} must be a finite number above 0")
        return cls(
            reserved_vcpus=group.reserved_host_cpus,
            reserved_memory_mb=group.reserved_host_memory_mb,
            reserved_local_gb=group.reserved_host_disk_gb,
            cpu_allocation_ratio=group.initial_cpu_allocation_ratio,
            ram_allocation_ratio=group.initial_ram_allocation_ratio,
            disk_allocation_ratio=group.initial_disk_allocation_ratio,
        )


@dataclasses.dataclass(frozen=True)
class NodeRecord:
    """A node row as read (under lock): inventory, usage counters, generation."""

    id: int
    uuid: str
    host: str
    hypervisor_hostname: str
    placeholder: bool
    vcpus: int | None
    memory_mb: int | None
    local_gb: int | None
    reserved_vcpus: int
    reserved_memory_mb: int
    reserved_local_gb: int
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    vcpus_used: int
    memory_mb_used: int
    local_gb_used: int
    running_vms: int
    generation: int

    @classmethod
    def from_row(cls, row: Any) -> "NodeRecord":
        return cls(**{name: getattr(row, name) for name in _FIELD_NAMES})

    @property
    def key(self) -> NodeKey:
        return (self.host, self.hypervisor_hostname)


# found once: every node a batch locks is read through them
_FIELD_NAMES = tuple(field.name for field in dataclasses.fields(NodeRecord))
_COLUMNS = [TABLE.c[name] for name in _FIELD_NAMES]


def create(
    connection: sa.Connection, wanted: Iterable[tuple[NodeKey, bool]], defaults: InventoryDefaults
) -> None:
    """Create nodes that do not exist yet, with unknown totals: they count usage
    until someone registers inventory. ``wanted`` pairs a key with its placeholder flag."""
    rows = [_new_row(key, placeholder, defaults) for key, placeholder in sorted(wanted)]
    upsert.insert_missing(connection, TABLE, rows)


def _new_row(key: NodeKey, placeholder: bool, defaults: InventoryDefaults) -> dict[str, Any]:
    host, hypervisor_hostname = key
    return {
        "uuid": str(uuid.uuid4()),
        "host": host,
        "hypervisor_hostname": hypervisor_hostname,
        "placeholder": placeholder,
        "vcpus_used": 0,
        "memory_mb_used": 0,
        "local_gb_used": 0,
        "running_vms": 0,
        "generation": 0,
        **dataclasses.asdict(defaults),
    }


def lock_hosts(connection: sa.Connection, hosts: Iterable[str]) -> list[NodeRecord]:
    """Every node of ``hosts``, locked in ONE statement in id order.

    All workers lock nodes in id order (after their instance rows, in uuid
    order), so two batches that touch the same nodes never wait on each
    other in a cycle. A host has one node but for Ironic, so locking all of
    a host's nodes costs next to nothing and lets a host-only location
    (a move's destination) be resolved among locked rows.
    """
    names = sorted(set(hosts))
    if not names:
        return []
    query = (
        sa.select(*_COLUMNS)
        .where(any_of(connection, TABLE.c.host, names))
        .order_by(TABLE.c.id)
        .with_for_update()
    )
    return [NodeRecord.from_row(row) for row in connection.execute(query)]


def select(where: Any = None) -> sa.Select[Any]:
    """Node rows (unlocked) in id order, for announcing; ``where`` narrows them."""
    query = sa.select(*_COLUMNS).order_by(TABLE.c.id)
    return query if where is None else query.where(where)


def confirm(connection: sa.Connection, node_ids: Sequence[int]) -> None:
    """A payload named a placeholder node exactly: it is a real node."""
    if node_ids:
        connection.execute(
            sa.update(TABLE).where(any_of(connection, TABLE.c.id, node_ids)).values(placeholder=False)
        )


class InvalidInventory(ConfigError):
    """An inventory that cannot be: a negative amount, more reserved than there is, a
    ratio not above 0 (its capacity payload would fail the published schema)."""


def register(
    connection: sa.Connection, key: NodeKey, inventory: dict[str, Any], defaults: InventoryDefaults
) -> tuple[NodeRecord, NodeRecord]:
    """Create or change a node's inventory (``tracker-manage node set``); it is real from now on.
    Returns the node before and after."""
    create(connection, [(key, False)], defaults)
    where = (TABLE.c.host == key[0], TABLE.c.hypervisor_hostname == key[1])
    node = NodeRecord.from_row(connection.execute(sa.select(*_COLUMNS).where(*where).with_for_update()).one())
    changes = {**inventory, "placeholder": False, "generation": node.generation + 1}
    changed = dataclasses.replace(node, **changes)
    _check_inventory(changed)
    connection.execute(sa.update(TABLE).where(TABLE.c.id == node.id).values(changes))
    return node, changed


def _check_inventory(node: NodeRecord) -> None:
    """What every path that sets an inventory must hold, whoever calls it (the CLI checks
    each option too, for an argparse line naming it)."""
    name = f"node {node.host}/{node.hypervisor_hostname}"
    for total in ("vcpus", "memory_mb", "local_gb"):
        amount, reserved = getattr(node, total), getattr(node, "reserved_" + total)
        if (amount is not None and amount < 0) or reserved < 0:
            raise InvalidInventory(f"{name}: {total} {amount} and reserved {reserved} cannot be negative")
        if amount is not None and reserved > amount:
            raise InvalidInventory(
                f"{name}: reserved_{total} {reserved} exceeds "
                f"{total} {amount}: lower --reserved-{total.replace('_', '-')}"
            )
    for ratio in ("cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio"):
        if not valid_ratio(getattr(node, ratio)):
            raise InvalidInventory(f"{name}: {ratio} {getattr(node, ratio)} is not a finite number above 0")


def valid_ratio(value: float) -> bool:
    return 0 < value < math.inf
