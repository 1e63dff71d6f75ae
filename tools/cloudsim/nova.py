"""The simulated Nova: compute nodes, instances, in-flight moves, the oracle.

The oracle reproduces what Nova's resource tracker (RT) would report for each
compute node if it recomputed usage at the end of the run: for every instance
whose ``host``/``node`` point at the node and that is not deleted or
shelved-offloaded, the embedded flavor; plus the move claims ("holds") that
the RT keeps for in-progress migrations.  Moves are modelled explicitly: while
``Instance.move`` is set, its ``holds`` list *replaces* the instance-row
charge, and each lifecycle step rewrites the holds exactly as the spec's "Move
accounting, by host" table says.  No reserved baseline, no allocation ratios.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime

from cloudsim.flavors import Flavor, disk_gb

UsageRow = dict[str, int | str]


@dataclass(frozen=True)
class Node:
    """One compute node (a resource tracker ``ComputeNode`` row)."""

    host: str
    node: str
    vcpus: int
    memory_mb: int
    local_gb: int

    @property
    def key(self) -> str:
        """The ``host/node`` key used by the oracle."""
        return f"{self.host}/{self.node}"


@dataclass
class Move:
    """An in-progress migration and the RT claims it currently holds.

    ``holds`` is the full charge of the instance while the move is open:
    e.g. after a cross-host resize claim, ``[(source, old), (dest, new)]``.
    """

    kind: str  # "resize" | "live-migration" | "evacuation"
    source: Node
    dest: Node
    old_flavor: Flavor
    new_flavor: Flavor
    holds: list[tuple[Node, Flavor]] = field(default_factory=list)


@dataclass
class Instance:
    """The subset of ``nova.objects.Instance`` that notifications expose."""

    uuid: str
    project_id: str
    user_id: str
    display_name: str
    flavor: Flavor
    image_ref: str
    volume_id: str | None
    created_at: datetime
    reservation_id: str
    instance_name: str
    key_name: str | None = "default-key"
    availability_zone: str | None = None
    host: str | None = None
    node: str | None = None
    vm_state: str = "building"
    task_state: str | None = "scheduling"
    power_state: str = "pending"
    old_flavor: Flavor | None = None
    new_flavor: Flavor | None = None
    launched_at: datetime | None = None
    terminated_at: datetime | None = None
    deleted_at: datetime | None = None
    updated_at: datetime | None = None
    locked: bool = False
    locked_reason: str | None = None
    ip_address: str | None = None
    mac: str | None = None
    port_id: str | None = None
    move: Move | None = None
    tags: list[str] = field(default_factory=list)

    @property
    def volume_backed(self) -> bool:
        """``is_volume_backed_instance``: empty image_ref means BFV here."""
        return not self.image_ref

    @property
    def counts(self) -> bool:
        """Whether the RT charges the instance row to ``host``/``node``.

        ``vm_states.allow_resource_removal``: deleted, or shelved_offloaded
        unless spawning; a failed build has host/node unset anyway.
        """
        if self.host is None or self.node is None:
            return False
        if self.vm_state == "deleted":
            return False
        return not (self.vm_state == "shelved_offloaded" and self.task_state != "spawning")


def _zero_usage() -> dict[str, int]:
    return {"vcpus": 0, "memory_mb": 0, "local_gb": 0}


def _add(usage: dict[str, int], flavor: Flavor, volume_backed: bool) -> None:
    usage["vcpus"] += flavor.vcpus
    usage["memory_mb"] += flavor.memory_mb
    usage["local_gb"] += disk_gb(flavor, volume_backed)


@dataclass
class NovaState:
    """Nodes and instances of the simulated cloud; owns the oracle."""

    nodes: list[Node]
    instances: dict[str, Instance] = field(default_factory=dict)
    # host/node pairs to their Node: resolved for every charge of every instance
    _by_name: dict[tuple[str, str], Node] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name = {(node.host, node.node): node for node in self.nodes}

    def node_by_name(self, host: str, node: str) -> Node:
        """Resolve an instance's host/node pair to its Node."""
        try:
            return self._by_name[(host, node)]
        except KeyError:
            raise KeyError(f"{host}/{node}") from None

    def charges(self, inst: Instance) -> list[tuple[Node, Flavor]]:
        """Everything the RT charges for ``inst`` right now, node by node."""
        if inst.move is not None and inst.vm_state != "deleted":
            return list(inst.move.holds)
        if inst.counts:
            assert inst.host is not None and inst.node is not None
            return [(self.node_by_name(inst.host, inst.node), inst.flavor)]
        return []

    def node_usage(self) -> dict[str, dict[str, int]]:
        """vcpus/memory_mb/local_gb per node key, holds included."""
        usage = {node.key: _zero_usage() for node in self.nodes}
        for inst in self.instances.values():
            for node, flavor in self.charges(inst):
                _add(usage[node.key], flavor, inst.volume_backed)
        return usage

    def running_vms(self) -> dict[str, int]:
        """RT ``running_vms``: counted instances whose row is on the node."""
        counts = {node.key: 0 for node in self.nodes}
        for inst in self.instances.values():
            if inst.counts:
                counts[f"{inst.host}/{inst.node}"] += 1
        return counts

    def project_usage(self) -> dict[str, dict[str, int]]:
        """Placement-like per-project usage: holds included on every node."""
        projects: dict[str, dict[str, int]] = {}
        for inst in self.instances.values():
            row = projects.setdefault(inst.project_id, {**_zero_usage(), "instances": 0})
            for _node, flavor in self.charges(inst):
                _add(row, flavor, inst.volume_backed)
            row["instances"] += 1 if inst.counts else 0
        return projects

    def oracle(self) -> dict[str, dict[str, dict[str, int | str]]]:
        """The true end state, in the format the tracker is compared with."""
        usage, vms = self.node_usage(), self.running_vms()
        nodes: dict[str, dict[str, int | str]] = {}
        for node in self.nodes:
            nodes[node.key] = {
                "host": node.host,
                "node": node.node,
                **usage[node.key],
                "running_vms": vms[node.key],
            }
        projects: dict[str, dict[str, int | str]] = {
            key: dict(row) for key, row in self.project_usage().items()
        }
        return {"nodes": nodes, "projects": projects}

    def inventory(self) -> list[dict[str, int | str]]:
        """Static capacity of every node (what the hypervisor reports)."""
        return [
            {
                "host": n.host,
                "node": n.node,
                "vcpus": n.vcpus,
                "memory_mb": n.memory_mb,
                "local_gb": n.local_gb,
            }
            for n in self.nodes
        ]

    def fits(self, node: Node, flavor: Flavor, volume_backed: bool, cpu_ratio: float) -> bool:
        """Placement-style capacity check (cpu overcommit, no ram/disk overcommit)."""
        return fits_usage(self.node_usage()[node.key], node, flavor, volume_backed, cpu_ratio)

    def pick_node(
        self,
        flavor: Flavor,
        volume_backed: bool,
        rng: random.Random,
        exclude_hosts: set[str] | frozenset[str] = frozenset(),
        cpu_ratio: float = 4.0,
    ) -> Node | None:
        """The scheduler: a random node that fits, None means NoValidHost."""
        usage = self.node_usage()  # once per decision, not once per candidate
        candidates = [
            n
            for n in self.nodes
            if n.host not in exclude_hosts and fits_usage(usage[n.key], n, flavor, volume_backed, cpu_ratio)
        ]
        return rng.choice(candidates) if candidates else None


def fits_usage(
    used: dict[str, int], node: Node, flavor: Flavor, volume_backed: bool, cpu_ratio: float
) -> bool:
    """``flavor`` fits on ``node`` beside ``used`` (cpu overcommit, no ram/disk overcommit)."""
    return (
        used["vcpus"] + flavor.vcpus <= node.vcpus * cpu_ratio
        and used["memory_mb"] + flavor.memory_mb <= node.memory_mb
        and used["local_gb"] + disk_gb(flavor, volume_backed) <= node.local_gb
    )


def make_nodes(
    hosts: int, nodes_per_host: int, rng: random.Random, domain: str = "example.org"
) -> list[Node]:
    """Heterogeneous nodes; node names always differ from host names."""
    shapes = [(16, 65536, 500), (24, 98304, 800), (32, 131072, 1000)]
    nodes = []
    for h in range(1, hosts + 1):
        host = f"cmp{h:02d}"
        for n in range(1, nodes_per_host + 1):
            name = f"{host}.{domain}" if nodes_per_host == 1 else f"{host}-n{n}"
            vcpus, mem, disk = rng.choice(shapes)
            nodes.append(Node(host, name, vcpus, mem, disk))
    return nodes
