"""Route failures to the instances they concern, by Nova's request id.

A versioned ``compute.exception`` carries the request id of the action that
failed and nothing else that names an instance. The resize events of that
action carry the same id (``InstancePayload.request_id``, or the envelope's
``_context_request_id`` in the legacy format), so:

- each batch records which instances its resize events' request ids name
  (``instance_requests``);
- a failure whose request is known becomes an event of each instance it
  names, folded like any other (duplicates, late arrival, tombstones);
- a failure whose request no event has named yet (errors and infos travel on
  two queues, so it may come first) is parked; the first resize event naming
  that request adopts it, and it is folded in at its place in time.

Parked failures of requests that never name an instance (a failed reboot, a
failed volume attach) are forgotten by ``tracker-manage purge``.

Across workers, a failure being parked and an event of its request being
applied at the same moment would each miss the other. Both first lock their
request's row (``nova_requests``, in request id order, before any other
lock): the second waits for the first to commit, then reads what it wrote.
"""

import dataclasses
import json
from collections.abc import Sequence

import sqlalchemy as sa

from tracker.accounting import codec
from tracker.accounting.history import stored_time
from tracker.db import upsert
from tracker.db.anyof import any_of
from tracker.db.models import InstanceRequest, NovaRequest, ParkedFailure
from tracker.events.model import InstanceEvent

REQUESTS: sa.Table = InstanceRequest.__table__  # type: ignore[assignment]
PARKED: sa.Table = ParkedFailure.__table__  # type: ignore[assignment]
LOCKS: sa.Table = NovaRequest.__table__  # type: ignore[assignment]

# The events whose request id a failure can be matched to: those of resizes and
# cold migrations (accounting.lifecycle._failure); other moves report their
# failures with notifications of their own.
_NAMING_PREFIX = "resize"


@dataclasses.dataclass
class Routed:
    """The events to fold, and for each input event the positions of its routed copies.

    An instance event is its own copy; a failure has one copy per instance its
    request names, or none (it is then parked). Failures adopted from the
    parked ones follow the batch's own events.
    """

    events: list[InstanceEvent]
    copies: list[list[int]]
    to_park: list[InstanceEvent]
    adopted: list[int]
    # each adopted failure, and the positions of its copies
    adoptions: list[tuple[InstanceEvent, list[int]]] = dataclasses.field(default_factory=list)


def route(connection: sa.Connection, events: Sequence[InstanceEvent]) -> Routed:
    naming = _naming(events)
    failures = {e.request_id for e in events if not e.routed and e.request_id is not None}
    _lock(connection, failures | naming.keys(), events)
    known = _instances_of(connection, failures - naming.keys())
    for request_id, uuids in naming.items():
        known.setdefault(request_id, set()).update(uuids)
    routed = Routed(events=[], copies=[], to_park=[], adopted=[])
    for event in events:
        copies = [event] if event.routed else _copies(event, known)
        if not copies:
            routed.to_park.append(event)
        routed.copies.append(list(range(len(routed.events), len(routed.events) + len(copies))))
        routed.events.extend(copies)
    for row_id, failure in _parked(connection, set(naming)):
        routed.adopted.append(row_id)
        copies = _copies(failure, known)
        routed.adoptions.append((failure, list(range(len(routed.events), len(routed.events) + len(copies)))))
        routed.events.extend(copies)
    return routed


def record(connection: sa.Connection, routed: Routed, folded: set[int]) -> None:
    """After the batch's instances exist: remember the requests of its ``folded`` events
    (positions in ``routed.events``; a refused one may have no instance row), park and
    unpark failures."""
    naming = _naming([event for position, event in enumerate(routed.events) if position in folded])
    pairs = sorted({(request_id, uuid) for request_id, uuids in naming.items() for uuid in uuids})
    upsert.insert_missing(connection, REQUESTS, [{"request_id": r, "instance_uuid": u} for r, u in pairs])
    upsert.insert_missing(
        connection,
        PARKED,
        [
            {
                "request_id": event.request_id,
                "message_id": event.message_id,
                "timestamp": stored_time(event),
                "data": json.dumps(codec.dump(event)),
            }
            for event in sorted(routed.to_park, key=lambda e: e.message_id)
        ],
    )
    if routed.adopted:
        connection.execute(sa.delete(PARKED).where(any_of(connection, PARKED.c.id, sorted(routed.adopted))))


def forget(connection: sa.Connection, before: str) -> None:
    """Drop failures parked, and request locks first seen, before ``before`` (stored
    time text): no event of those requests is still in flight."""
    connection.execute(sa.delete(LOCKS).where(LOCKS.c.first_seen < before))  # locks first, as batches
    connection.execute(sa.delete(PARKED).where(PARKED.c.timestamp < before))


def _lock(connection: sa.Connection, request_ids: set[str], events: Sequence[InstanceEvent]) -> None:
    if not request_ids:
        return
    first_seen: dict[str | None, str] = {}
    for event in events:
        if event.request_id in request_ids:
            first_seen.setdefault(event.request_id, stored_time(event))
    rows = [{"request_id": r, "first_seen": first_seen[r]} for r in sorted(request_ids)]
    upsert.insert_missing(connection, LOCKS, rows)
    query = (
        sa.select(LOCKS.c.request_id)
        .where(any_of(connection, LOCKS.c.request_id, sorted(request_ids)))
        .order_by(LOCKS.c.request_id)
        .with_for_update()
    )
    connection.execute(query).all()


def _naming(events: Sequence[InstanceEvent]) -> dict[str, set[str]]:
    naming: dict[str, set[str]] = {}
    for event in events:
        if event.routed and event.request_id is not None and event.action.startswith(_NAMING_PREFIX):
            naming.setdefault(event.request_id, set()).add(event.instance_uuid)
    return naming


def _copies(failure: InstanceEvent, known: dict[str, set[str]]) -> list[InstanceEvent]:
    uuids = known.get(failure.request_id or "", set())
    return [dataclasses.replace(failure, instance_uuid=uuid) for uuid in sorted(uuids)]


def _instances_of(connection: sa.Connection, request_ids: set[str]) -> dict[str, set[str]]:
    if not request_ids:
        return {}
    query = sa.select(REQUESTS.c.request_id, REQUESTS.c.instance_uuid).where(
        any_of(connection, REQUESTS.c.request_id, sorted(request_ids))
    )
    known: dict[str, set[str]] = {}
    for row in connection.execute(query):
        known.setdefault(row.request_id, set()).add(row.instance_uuid)
    return known


def _parked(connection: sa.Connection, request_ids: set[str]) -> list[tuple[int, InstanceEvent]]:
    if not request_ids:
        return []
    query = (
        sa.select(PARKED.c.id, PARKED.c.data)
        .where(any_of(connection, PARKED.c.request_id, sorted(request_ids)))
        .order_by(PARKED.c.id)
    )
    return [(int(row.id), codec.load_event(json.loads(row.data))) for row in connection.execute(query)]
