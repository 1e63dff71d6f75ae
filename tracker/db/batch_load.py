"""Read what a batch needs, locking its instance rows: one statement per kind of row.

Instance rows are created first if missing (one multi-row insert that leaves
existing rows alone), then locked in one ``SELECT … FOR UPDATE ORDER BY
uuid``: every event of one instance serializes here, across workers.
"""

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tracker.accounting import codec
from tracker.accounting.history import Kept, Record
from tracker.accounting.state import InstanceState
from tracker.accounting.usage import Usage
from tracker.db import flavors, upsert
from tracker.db.anyof import any_of
from tracker.db.holdings import Holdings
from tracker.db.models import AllocationRow, ComputeNode, Instance, InstanceEventRow, Watermark
from tracker.events.model import InstanceEvent

PURGED_BEFORE = "tombstones_purged_before"

INSTANCES: sa.Table = Instance.__table__  # type: ignore[assignment]
EVENTS: sa.Table = InstanceEventRow.__table__  # type: ignore[assignment]
ALLOCATIONS: sa.Table = AllocationRow.__table__  # type: ignore[assignment]
_NODES: sa.Table = ComputeNode.__table__  # type: ignore[assignment]
_WATERMARKS: sa.Table = Watermark.__table__  # type: ignore[assignment]


@dataclasses.dataclass(frozen=True)
class Loaded:
    """The locked instances' records and holdings, and what completes and judges events."""

    records: dict[str, Record]
    holdings: dict[str, Holdings]
    owners: dict[str, str | None]  # the project each instance's rows name
    purged_before: str | None
    catalogue: flavors.Catalogue


def load(connection: sa.Connection, events: Sequence[InstanceEvent]) -> Loaded:
    uuids = sorted({event.instance_uuid for event in events})
    records = _lock_instances(connection, uuids)
    for uuid, kept in _kept_events(connection, uuids).items():
        records[uuid] = dataclasses.replace(records[uuid], kept=tuple(kept))
    fresh = any(record.is_new for record in records.values())
    holdings, owners = _holdings(connection, uuids)
    return Loaded(
        records=records,
        holdings=holdings,
        owners=owners,
        purged_before=_purged_before(connection) if fresh else None,
        catalogue=flavors.load(connection, events),
    )


def _lock_instances(connection: sa.Connection, uuids: list[str]) -> dict[str, Record]:
    upsert.insert_missing(
        connection, INSTANCES, [{"uuid": uuid, "deleted": False, "base_state": ""} for uuid in uuids]
    )
    query = (
        sa.select(INSTANCES.c.uuid, INSTANCES.c.base_state, INSTANCES.c.state)
        .where(any_of(connection, INSTANCES.c.uuid, uuids))
        .order_by(INSTANCES.c.uuid)
        .with_for_update()
    )
    return {row.uuid: _record(row) for row in connection.execute(query)}


def _record(row: Any) -> Record:
    base = _state(row.base_state) or InstanceState(uuid=row.uuid)
    return Record(row.uuid, base, _state(row.state), base_stored=bool(row.base_state))


def _state(text: str) -> InstanceState | None:
    return codec.load_state(json.loads(text)) if text else None


def _kept_events(connection: sa.Connection, uuids: list[str]) -> dict[str, list[Kept]]:
    """Kept events of all the batch's instances: duplicates are found among them."""
    query = (
        sa.select(
            EVENTS.c.instance_uuid,
            EVENTS.c.id,
            EVENTS.c.message_id,
            EVENTS.c.dedupe_key,
            EVENTS.c.timestamp,
            EVENTS.c.data,
        )
        .where(any_of(connection, EVENTS.c.instance_uuid, uuids))
        .order_by(EVENTS.c.instance_uuid, EVENTS.c.timestamp, EVENTS.c.id)
    )
    kept: dict[str, list[Kept]] = {}
    # unpacked: most rows a batch reads are these (many per instance)
    for uuid, row_id, message_id, dedupe_key, time, data in connection.execute(query):
        kept.setdefault(uuid, []).append(Kept.from_row(row_id, message_id, dedupe_key, time, data))
    return kept


def _holdings(
    connection: sa.Connection, uuids: list[str]
) -> tuple[dict[str, Holdings], dict[str, str | None]]:
    query = sa.select(
        ALLOCATIONS.c.instance_uuid,
        ALLOCATIONS.c.project_id,
        ALLOCATIONS.c.role,
        ALLOCATIONS.c.vcpus,
        ALLOCATIONS.c.memory_mb,
        ALLOCATIONS.c.local_gb,
        _NODES.c.host,
        _NODES.c.hypervisor_hostname,
    ).where(ALLOCATIONS.c.node_id == _NODES.c.id, any_of(connection, ALLOCATIONS.c.instance_uuid, uuids))
    held: dict[str, dict[tuple[tuple[str, str], str], Usage]] = {}
    owners: dict[str, str | None] = {}
    for row in connection.execute(query):
        node = (row.host, row.hypervisor_hostname)
        held.setdefault(row.instance_uuid, {})[(node, row.role)] = Usage(
            row.vcpus, row.memory_mb, row.local_gb
        )
        owners[row.instance_uuid] = row.project_id
    return dict(held), owners


def _purged_before(connection: sa.Connection) -> str | None:
    """The last tombstone purge: an unknown instance's event older than it may be a purged one's."""
    query = sa.select(_WATERMARKS.c.value).where(_WATERMARKS.c.name == PURGED_BEFORE)
    value = connection.execute(query).scalar_one_or_none()
    return str(value) if value is not None else None
