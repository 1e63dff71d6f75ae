"""From a batch's folded states to what each instance holds on which node (pure).

Events are taken in arrival order, as one transaction per event would take
them: an event whose allocations did not change moves nothing; otherwise its
allocations are resolved to nodes and compared with what the instance holds.
The changes add up per node and per project over the batch.
"""

import collections
import dataclasses
from collections.abc import Iterable, Mapping

from tracker.accounting import allocations as alloc
from tracker.accounting.history import Step
from tracker.accounting.usage import ZERO, Usage
from tracker.db.nodes import NodeKey
from tracker.db.resolve import Catalogue

# (node, role) -> usage
Holdings = Mapping[tuple[NodeKey, str], Usage]
# usage change and running_vms change
Change = tuple[Usage, int]


@dataclasses.dataclass
class Plan:
    """What a batch changes. ``changed[i]`` is None for an event not folded, else
    the nodes event ``i`` changed (empty: it changed none)."""

    changed: list[tuple[NodeKey, ...] | None] = dataclasses.field(default_factory=list)
    # per event: the nodes where its instance held something before it and nothing after
    freed: list[tuple[NodeKey, ...]] = dataclasses.field(default_factory=list)
    # instance -> what it holds after the batch, and the project its rows name
    holdings: dict[str, Holdings] = dataclasses.field(default_factory=dict)
    owners: dict[str, str | None] = dataclasses.field(default_factory=dict)
    nodes: dict[NodeKey, Change] = dataclasses.field(default_factory=dict)
    projects: dict[str, Change] = dataclasses.field(default_factory=dict)


def touched_hosts(steps: Iterable[Step], initial: Mapping[str, Holdings]) -> set[str]:
    """Hosts whose nodes the batch may change: their rows are locked before resolving."""
    hosts: set[str] = set()
    for step in steps:
        if step.moves:
            hosts.update(held.location.host for held in step.held_after)
            hosts.update(node[0] for node, _role in initial.get(step.event.instance_uuid, {}))
    return hosts


def plan(
    steps: Iterable[Step],
    initial: Mapping[str, Holdings],
    owners: Mapping[str, str | None],
    catalogue: Catalogue,
) -> Plan:
    """``owners``: the project each instance's stored rows name (what its project was credited)."""
    result = Plan(owners=dict(owners))
    current = dict(initial)
    for step in steps:
        before = current.get(step.event.instance_uuid, {})
        result.changed.append(_plan_step(result, current, step, catalogue))
        after = current.get(step.event.instance_uuid, {})
        result.freed.append(_freed(before, after))
    return result


def _freed(before: Holdings, after: Holdings) -> tuple[NodeKey, ...]:
    """The nodes held before and not after."""
    if after is before:  # most events: nothing changed hands
        return ()
    return tuple(sorted({node for node, _role in before} - {node for node, _role in after}))


def _plan_step(
    result: Plan, current: dict[str, Holdings], step: Step, catalogue: Catalogue
) -> tuple[NodeKey, ...] | None:
    if step.verdict is not None or step.after is None:
        return None
    if not step.moves:
        return ()
    uuid = step.event.instance_uuid
    old = current.get(uuid, {})
    wanted = step.held_after
    nodes = catalogue.resolve([held.location for held in wanted], _hosts_of(old))
    new = {(node, held.role): held.usage for node, held in zip(nodes, wanted, strict=True)}
    if new == old:
        return ()
    deltas = node_deltas(old, new)
    for node, change in deltas.items():
        result.nodes[node] = _add(result.nodes.get(node), change)
    # Project totals include move holds, as Placement usages do. What the old rows
    # held is taken back from the project they name, which a payload may since
    # have changed: each project always equals the sum of the rows naming it.
    _credit(result.projects, result.owners.get(uuid), (-_total(old), -_instances(old)))
    _credit(result.projects, step.after.project_id, (_total(new), _instances(new)))
    current[uuid] = result.holdings[uuid] = new
    result.owners[uuid] = step.after.project_id
    return tuple(sorted(deltas))


def _credit(projects: dict[str, Change], project_id: str | None, change: Change) -> None:
    if project_id is not None and change != (ZERO, 0):
        projects[project_id] = _add(projects.get(project_id), change)


def _hosts_of(held: Holdings) -> dict[str, NodeKey]:
    """A re-derivation keeps a destination on the node of that host it already holds."""
    hosts: dict[str, NodeKey] = {}
    for node, _role in sorted(held):
        hosts.setdefault(node[0], node)
    return hosts


def node_deltas(old: Holdings, new: Holdings) -> dict[NodeKey, Change]:
    """Per node: usage change and running_vms change; nodes left unchanged are absent."""
    deltas: dict[NodeKey, Change] = collections.defaultdict(lambda: (ZERO, 0))
    for sign, held in ((-1, old), (1, new)):
        for (node, role), usage in held.items():
            used, vms = deltas[node]
            deltas[node] = (used + (usage if sign > 0 else -usage), vms + sign * (role == alloc.INSTANCE))
    return {node: d for node, d in deltas.items() if d != (ZERO, 0)}


def _add(total: Change | None, change: Change) -> Change:
    used, vms = total or (ZERO, 0)
    return (used + change[0], vms + change[1])


def _total(held: Holdings) -> Usage:
    return sum(held.values(), ZERO)


def _instances(held: Holdings) -> int:
    return sum(1 for (_node, role) in held if role == alloc.INSTANCE)
