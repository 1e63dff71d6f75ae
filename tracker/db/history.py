"""An instance's folded snapshot and its recent events, as stored."""

import dataclasses
import json

import sqlalchemy as sa
from sqlalchemy import orm

from tracker.accounting import codec, lifecycle
from tracker.accounting.state import InstanceState
from tracker.db.missing import MissingRows
from tracker.db.models import Instance, InstanceEvent
from tracker.events.model import InstanceEvent as Event


@dataclasses.dataclass
class History:
    """What re-deriving an instance needs: the locked row, its snapshot, its events."""

    record: Instance
    base: InstanceState
    events: list[Event]

    def knows(self, event: Event) -> bool:
        """Redelivered (same message id) or republished (same action, host and time)."""
        return any(e.message_id == event.message_id or e.dedupe_key == event.dedupe_key for e in self.events)

    def is_stale(self, event: Event) -> bool:
        """Older than the snapshot: it can no longer be put in its place."""
        last = self.base.last_timestamp
        return last is not None and event.timestamp <= last


def stored_time(event: Event) -> str:
    """Fixed-width ISO text, so that string order is time order on every backend."""
    return event.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%f")


def lock(session: orm.Session, instance_uuid: str) -> History:
    """Lock the instance row (every event of it serializes here), then read its events."""
    record = session.get(Instance, instance_uuid, with_for_update=True, populate_existing=True)
    if record is None:
        raise MissingRows(instance_uuid=instance_uuid)
    rows = session.scalars(
        sa.select(InstanceEvent)
        .where(InstanceEvent.instance_uuid == instance_uuid)
        .order_by(InstanceEvent.timestamp, InstanceEvent.id)
    )
    events = [codec.load_event(json.loads(row.data)) for row in rows]
    return History(record, _base(record), events)


def _base(record: Instance) -> InstanceState:
    if not record.base_state:
        return InstanceState(uuid=record.uuid)
    return codec.load_state(json.loads(record.base_state))


def append(session: orm.Session, history: History, event: Event) -> None:
    session.add(
        InstanceEvent(
            instance_uuid=history.record.uuid,
            message_id=event.message_id,
            dedupe_key=event.dedupe_key,
            timestamp=stored_time(event),
            data=json.dumps(codec.dump(event)),
        )
    )
    history.events.append(event)


def compact(session: orm.Session, history: History, state: InstanceState, limit: int) -> None:
    """Fold the oldest events into the snapshot; after a delete, fold them all.

    The tombstone keeps only the snapshot: any later event is stale.
    """
    events = sorted(history.events, key=lifecycle.order_key)
    keep = 0 if state.deleted else limit // 2
    if not state.deleted and len(events) <= limit:
        return
    folded, kept = events[: len(events) - keep], events[len(events) - keep :]
    base = lifecycle.derive(history.base, folded)
    history.record.base_state = json.dumps(codec.dump(base))
    session.flush()
    session.execute(
        sa.delete(InstanceEvent).where(
            InstanceEvent.instance_uuid == history.record.uuid,
            InstanceEvent.message_id.in_([e.message_id for e in folded]),
        )
    )
    history.base, history.events = base, kept


def summarize(record: Instance, state: InstanceState) -> None:
    """Human-readable columns; the truth is the snapshot plus the events."""
    record.project_id = state.project_id
    record.host = state.location.host if state.location else None
    record.node = state.location.node if state.location else None
    record.vm_state = state.vm_state
    record.task_state = state.task_state
    record.deleted = state.deleted
