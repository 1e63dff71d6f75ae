"""Compute node rows: registration, resolution of a location, locking."""

import dataclasses
from collections.abc import Iterable

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy import orm

from tracker.accounting.state import Location
from tracker.db.models import ComputeNode


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
        return cls(
            reserved_vcpus=group.reserved_host_cpus,
            reserved_memory_mb=group.reserved_host_memory_mb,
            reserved_local_gb=group.reserved_host_disk_gb,
            cpu_allocation_ratio=group.initial_cpu_allocation_ratio,
            ram_allocation_ratio=group.initial_ram_allocation_ratio,
            disk_allocation_ratio=group.initial_disk_allocation_ratio,
        )


def new_node(
    host: str, hypervisor_hostname: str, defaults: InventoryDefaults, placeholder: bool = False
) -> ComputeNode:
    """A node with unknown totals: it counts usage until someone registers inventory."""
    return ComputeNode(
        host=host,
        hypervisor_hostname=hypervisor_hostname,
        placeholder=placeholder,
        vcpus_used=0,
        memory_mb_used=0,
        local_gb_used=0,
        running_vms=0,
        generation=0,
        **dataclasses.asdict(defaults),
    )


def find(session: orm.Session, host: str, hypervisor_hostname: str) -> ComputeNode | None:
    query = sa.select(ComputeNode).where(
        ComputeNode.host == host, ComputeNode.hypervisor_hostname == hypervisor_hostname
    )
    return session.scalars(query).one_or_none()


def resolve(session: orm.Session, location: Location, known: dict[str, int]) -> int | None:
    """Node id of ``location``; a host-only location takes a node of that host.

    ``known`` maps hosts to the nodes this instance already holds there, so a
    re-derivation keeps a destination where it was resolved before.
    """
    if location.node is not None:
        node = find(session, location.host, location.node)
        # A placeholder named exactly as a payload names a node is that real
        # node: report it missing so it is confirmed outside this transaction.
        return None if node is None or node.placeholder else node.id
    if location.host in known:
        return known[location.host]
    return _pick_node_of_host(session, location.host)


def _pick_node_of_host(session: orm.Session, host: str) -> int | None:
    """Prefer a real node over a placeholder, then a registered one, then the one
    named like its host (libvirt), then the oldest."""
    query = (
        sa.select(ComputeNode.id)
        .where(ComputeNode.host == host)
        .order_by(
            ComputeNode.placeholder,
            ComputeNode.vcpus.is_(None),
            (ComputeNode.hypervisor_hostname != host),
            ComputeNode.id,
        )
        .limit(1)
    )
    return session.scalars(query).first()


def lock(session: orm.Session, node_ids: Iterable[int]) -> dict[int, ComputeNode]:
    """``SELECT … FOR UPDATE`` in id order, so two moves never wait on each other in a cycle."""
    ids = sorted(set(node_ids))
    if not ids:
        return {}
    query = (
        sa.select(ComputeNode)
        .where(ComputeNode.id.in_(ids))
        .order_by(ComputeNode.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {node.id: node for node in session.scalars(query)}
