"""What a transaction announces, written in it and published after commit: the new
capacity of every node it changed, and an alert for each line it crossed.

The payload of a node is built here with its host's facts (service state,
zone, aggregates), whichever path changed the node: a batch of instance
events, an inventory change, a service or aggregate notification.
"""

import dataclasses
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from tracker.db import capacity, hosts, nodes
from tracker.db.models import AlertOutbox, CapacityOutbox
from tracker.db.nodes import NodeRecord

LOG = logging.getLogger(__name__)
CAPACITY: sa.Table = CapacityOutbox.__table__  # type: ignore[assignment]
ALERTS: sa.Table = AlertOutbox.__table__  # type: ignore[assignment]


def payloads(
    connection: sa.Connection, node_rows: Sequence[NodeRecord], default_zone: str
) -> list[dict[str, Any]]:
    """Capacity payloads of ``node_rows`` as they are, stamped now; ``default_zone``:
    Nova's ``default_availability_zone``, of hosts in no zone aggregate."""
    facts = hosts.facts(connection, {node.host for node in node_rows}, default_zone)
    now = capacity.now_text()
    return [capacity.payload(node, facts[node.host], now) for node in node_rows]


def write(
    connection: sa.Connection,
    updated: Sequence[NodeRecord],
    before: Iterable[NodeRecord],
    default_zone: str,
) -> None:
    """One capacity notification per node with its final generation (payloads are
    absolute), plus a ``capacity.overcommit`` alert for each node this change took
    over a capacity (``before``: the nodes as they were, by id)."""
    if not updated:
        return
    rows = [
        {"node_id": node.id, "generation": node.generation, "payload": json.dumps(body, sort_keys=True)}
        for node, body in zip(updated, payloads(connection, updated, default_zone), strict=True)
    ]
    connection.execute(CAPACITY.insert(), rows)
    earlier = {node.id: node for node in before}
    now = capacity.now_text()
    over = [capacity.overcommit_alert(earlier.get(node.id), node, now) for node in updated]
    alert(connection, capacity.OVERCOMMIT_EVENT_TYPE, [body for body in over if body is not None])


def alert(connection: sa.Connection, event_type: str, bodies: Sequence[Mapping[str, Any]]) -> None:
    """Alerts to publish at priority ``error`` after commit; every one is published."""
    if not bodies:
        return
    now = capacity.now_text()
    rows = [
        {
            "event_type": event_type,
            "payload": json.dumps(
                {"version": capacity.SCHEMA_VERSION, "timestamp": now, **body}, sort_keys=True
            ),
        }
        for body in bodies
    ]
    connection.execute(ALERTS.insert(), rows)


def announce_hosts(
    connection: sa.Connection, changed_hosts: Iterable[str], default_zone: str
) -> list[NodeRecord]:
    """A host's facts changed: its nodes get a new generation and are announced again."""
    locked = nodes.lock_hosts(connection, changed_hosts)
    if not locked:
        return []
    connection.execute(
        sa.update(nodes.TABLE)
        .where(nodes.TABLE.c.id.in_([node.id for node in locked]))
        .values(generation=nodes.TABLE.c.generation + 1)
    )
    bumped = [dataclasses.replace(node, generation=node.generation + 1) for node in locked]
    write(connection, bumped, locked, default_zone)  # the same usage: a node already over is no new crossing
    return bumped
