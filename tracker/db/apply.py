"""One pass per batch, in one transaction: load, fold, write.

Locks come in the same order in every worker: the batch's instance rows by
uuid, then the nodes of the hosts it changes by id, then project rows by
id. No two batches, in any number of processes, can wait on each other in a
cycle; the node generation compare-and-swap catches what locks would miss.
"""

import dataclasses
from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from tracker.accounting import history
from tracker.accounting.history import AFTER_DELETE, DUPLICATE, STALE
from tracker.accounting.usage import PLACEMENT
from tracker.db import batch_load, batch_write, flavors, holdings, nodes, outbox, quota, requests
from tracker.db.nodes import InventoryDefaults, NodeKey, NodeRecord
from tracker.db.resolve import Catalogue
from tracker.events.model import InstanceEvent

__all__ = [
    "AFTER_DELETE",
    "APPLIED",
    "DUPLICATE",
    "PARKED",
    "STALE",
    "UNCHANGED",
    "Outcome",
    "PoisonEvent",
    "apply_batch",
]

APPLIED = "applied"
UNCHANGED = "unchanged"
# a failure whose request no event has named yet: kept until one does
PARKED = "parked"


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    changed_nodes: tuple[int, ...] = ()
    # "host/node" of each node the event left its instance holding nothing on
    freed_nodes: tuple[str, ...] = ()
    # the instances the event was folded into (a failure names them only by its request)
    instances: tuple[str, ...] = ()
    # failures parked earlier that this event's request adopted, and their verdicts
    adopted: tuple[tuple[InstanceEvent, "Outcome"], ...] = ()


@dataclasses.dataclass(frozen=True)
class PoisonEvent:
    """The database refused this event for what it carries; the caller dead-letters it."""

    reason: str


def apply_batch(
    connection: sa.Connection,
    events: Sequence[InstanceEvent],
    history_limit: int,
    defaults: InventoryDefaults,
    *,
    quota_limits: Mapping[str, int],
    default_zone: str,
    rounding: str = PLACEMENT,
) -> list[Outcome]:
    """Apply ``events`` in arrival order, with the verdicts one transaction per event would give.

    Failures are first routed to the instances their request names
    (:mod:`tracker.db.requests`); one verdict per event of ``events`` comes back.
    """
    routed = requests.route(connection, events)
    outcomes = _apply_routed(
        connection,
        routed.events,
        history_limit,
        defaults,
        quota_limits=quota_limits,
        default_zone=default_zone,
        rounding=rounding,
    )
    folded = {i for i, outcome in enumerate(outcomes) if outcome.status in (APPLIED, UNCHANGED)}
    requests.record(connection, routed, folded)
    verdicts = [_verdict(outcomes, copies, routed.events) for copies in routed.copies]
    for failure, copies in routed.adoptions:
        # the first event of the batch naming its request adopted it
        adopter = next(i for i, e in enumerate(events) if e.routed and e.request_id == failure.request_id)
        adopted = (*verdicts[adopter].adopted, (failure, _verdict(outcomes, copies, routed.events)))
        verdicts[adopter] = dataclasses.replace(verdicts[adopter], adopted=adopted)
    return verdicts


def _apply_routed(
    connection: sa.Connection,
    events: Sequence[InstanceEvent],
    history_limit: int,
    defaults: InventoryDefaults,
    *,
    quota_limits: Mapping[str, int],
    default_zone: str,
    rounding: str,
) -> list[Outcome]:
    if not events:
        return []
    loaded = batch_load.load(connection, events)
    completed = [flavors.complete(loaded.catalogue, event) for event in events]
    records = dict(loaded.records)
    steps = history.fold(records, completed, loaded.purged_before, history_limit, rounding)
    locked = nodes.lock_hosts(connection, holdings.touched_hosts(steps, loaded.holdings))
    catalogue = Catalogue(locked)
    plan = holdings.plan(steps, loaded.holdings, loaded.owners, catalogue)
    node_rows = _create_nodes(connection, catalogue, locked, defaults)
    ids = {key: node.id for key, node in node_rows.items()}
    batch_write.histories(connection, loaded.records, records)
    batch_write.allocations(connection, plan, ids)
    updated = batch_write.nodes(connection, node_rows, plan)
    batch_write.projects(connection, plan)
    outbox.write(connection, updated, node_rows.values(), default_zone)
    outbox.alert(connection, quota.EVENT_TYPE, quota.crossings(connection, plan.projects, quota_limits))
    return [
        _outcome(step, changed, freed, ids)
        for step, changed, freed in zip(steps, plan.changed, plan.freed, strict=True)
    ]


def _create_nodes(
    connection: sa.Connection, catalogue: Catalogue, locked: list[NodeRecord], defaults: InventoryDefaults
) -> dict[NodeKey, NodeRecord]:
    """Create the nodes resolution asked for, confirm placeholders; all locked."""
    if catalogue.created:
        nodes.create(connection, catalogue.created.items(), defaults)
        locked = [*locked, *nodes.lock_hosts(connection, {host for host, _name in catalogue.created})]
    node_rows = {node.key: node for node in locked}
    nodes.confirm(connection, sorted(node_rows[key].id for key in catalogue.confirmed))
    return node_rows


def _verdict(
    outcomes: Sequence[Outcome], positions: Sequence[int], events: Sequence[InstanceEvent]
) -> Outcome:
    """One verdict for an event folded as several copies (a failure naming several
    instances): applied if any copy changed a node, else the first copy's; parked
    if it has none."""
    if not positions:
        return Outcome(PARKED)
    mine = [outcomes[p] for p in positions]
    changed = tuple(sorted({node for outcome in mine for node in outcome.changed_nodes}))
    freed = tuple(sorted({node for outcome in mine for node in outcome.freed_nodes}))
    status = APPLIED if changed else mine[0].status
    instances = tuple(events[p].instance_uuid for p in positions)
    return Outcome(status, changed, freed, instances)


def _outcome(
    step: history.Step,
    changed: tuple[NodeKey, ...] | None,
    freed: tuple[NodeKey, ...],
    ids: Mapping[NodeKey, int],
) -> Outcome:
    if step.verdict is not None:
        return Outcome(step.verdict)
    if not changed:
        return Outcome(UNCHANGED)
    return Outcome(APPLIED, tuple(sorted(ids[node] for node in changed)), tuple(f"{h}/{n}" for h, n in freed))
