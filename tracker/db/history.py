"""An instance's snapshot, current state and recent events, as stored.

``base_state`` is the snapshot the kept events fold onto; ``state`` is the
result of folding all of them. An event later than everything seen folds
onto ``state`` directly; a late one is put in its place among the kept
events and the state is derived again from ``base_state``.
"""

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
    """The locked instance row and the states it stores."""

    record: Instance
    base: InstanceState
    current: InstanceState | None

    def is_stale(self, event: Event) -> bool:
        """Older than the snapshot: it can no longer be put in its place."""
        last = self.base.last_timestamp
        return last is not None and event.timestamp <= last

    @property
    def is_new(self) -> bool:
        """The row was just created for this event: nothing is known of the instance."""
        return self.current is None and not self.record.base_state and self.record.event_count == 0

    def is_in_order(self, event: Event) -> bool:
        if self.current is None:
            return False
        last = self.current.last_timestamp
        return last is None or event.timestamp > last


def stored_time(event: Event) -> str:
    """Fixed-width ISO text, so that string order is time order on every backend."""
    return event.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%f")


def lock(session: orm.Session, instance_uuid: str) -> History:
    """Lock the instance row: every event of one instance serializes here."""
    record = session.get(Instance, instance_uuid, with_for_update=True, populate_existing=True)
    if record is None:
        raise MissingRows(instance_uuid=instance_uuid)
    base = _load(record.base_state) or InstanceState(uuid=record.uuid)
    return History(record, base, _load(record.state))


def _load(text: str) -> InstanceState | None:
    return codec.load_state(json.loads(text)) if text else None


def knows(session: orm.Session, instance_uuid: str, event: Event) -> bool:
    """Redelivered (same message id) or republished (same action, host and time)."""
    query = sa.select(InstanceEvent.id).where(
        InstanceEvent.instance_uuid == instance_uuid,
        sa.or_(InstanceEvent.message_id == event.message_id, InstanceEvent.dedupe_key == event.dedupe_key),
    )
    return session.scalars(query.limit(1)).first() is not None


def events(session: orm.Session, instance_uuid: str) -> list[Event]:
    rows = session.scalars(
        sa.select(InstanceEvent.data)
        .where(InstanceEvent.instance_uuid == instance_uuid)
        .order_by(InstanceEvent.timestamp, InstanceEvent.id)
    )
    return [codec.load_event(json.loads(data)) for data in rows]


def derive(session: orm.Session, history: History, event: Event) -> InstanceState:
    """The state with ``event`` applied: folded on, or put in its place if late."""
    if history.is_in_order(event) and history.current is not None:
        return lifecycle.apply(history.current, event)
    return lifecycle.derive(history.base, [*events(session, history.record.uuid), event])


def record(session: orm.Session, history: History, event: Event, state: InstanceState) -> None:
    """Keep the event and the new state; summary columns are for humans."""
    session.add(
        InstanceEvent(
            instance_uuid=history.record.uuid,
            message_id=event.message_id,
            dedupe_key=event.dedupe_key,
            timestamp=stored_time(event),
            data=json.dumps(codec.dump(event)),
        )
    )
    row = history.record
    row.event_count += 1
    row.state = json.dumps(codec.dump(state))
    row.project_id = state.project_id
    row.host = state.location.host if state.location else None
    row.node = state.location.node if state.location else None
    row.vm_state = state.vm_state
    row.task_state = state.task_state
    row.deleted = state.deleted


def compact(session: orm.Session, history: History, state: InstanceState, limit: int) -> None:
    """Fold the oldest events into the snapshot; after a delete, fold them all.

    The tombstone keeps only the snapshot: any later event is refused.
    """
    row = history.record
    if not state.deleted and row.event_count <= limit:
        return
    session.flush()
    kept = events(session, row.uuid)
    keep = 0 if state.deleted else limit // 2
    folded = kept[: len(kept) - keep]
    row.base_state = json.dumps(codec.dump(lifecycle.derive(history.base, folded)))
    row.event_count = len(kept) - len(folded)
    session.execute(
        sa.delete(InstanceEvent).where(
            InstanceEvent.instance_uuid == row.uuid,
            InstanceEvent.message_id.in_([e.message_id for e in folded]),
        )
    )
