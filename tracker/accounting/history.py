"""An instance's kept history, and what one more event does to it (pure).

The database keeps per instance a snapshot (``base``), the events folded on
top of it (``kept``) and their result (``current``). An event later than
everything seen folds onto ``current``; a late one is put in its place among
the kept events and the state derived again from ``base``. When more than
``limit`` events are kept, the oldest are folded into the snapshot; an event
older than the snapshot can no longer be placed and is stale. After a delete
everything is folded: the tombstone refuses whatever comes later.
"""

import dataclasses
import datetime
import functools
import json
from collections.abc import Sequence

from tracker.accounting import allocations, codec, lifecycle
from tracker.accounting.state import InstanceState
from tracker.accounting.usage import PLACEMENT
from tracker.events.model import InstanceEvent

DUPLICATE = "duplicate"
STALE = "stale"
AFTER_DELETE = "after_delete"


def time_text(moment: datetime.datetime) -> str:
    """Fixed-width ISO text (years zero-padded too), so that string order is time order
    on every backend."""
    return moment.isoformat(timespec="microseconds")


def stored_time(event: InstanceEvent) -> str:
    return time_text(event.timestamp)


@dataclasses.dataclass(eq=False, slots=True)
class Kept:
    """One kept event. Stored ones are decoded only if a late event or compaction needs them.

    ``order`` sorts as the database does (time, then row id); events kept in
    this pass sort after the stored ones of the same time, in arrival order.
    """

    message_id: str
    dedupe_key: str
    time: str
    order: tuple[str, int, int]
    row_id: int | None = None
    stored: str | None = None
    decoded: InstanceEvent | None = None

    @classmethod
    def from_row(cls, row_id: int, message_id: str, dedupe_key: str, time: str, data: str) -> "Kept":
        return cls(message_id, dedupe_key, time, (time, 0, row_id), row_id=row_id, stored=data)

    @classmethod
    def new(cls, event: InstanceEvent, ordinal: int) -> "Kept":
        time = stored_time(event)
        return cls(event.message_id, event.dedupe_key, time, (time, 1, ordinal), decoded=event)

    @property
    def event(self) -> InstanceEvent:
        if self.decoded is None:
            self.decoded = codec.load_event(json.loads(self.stored or "{}"))
        return self.decoded


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """An instance as stored. ``current`` None: not derived yet (nothing applied, or
    stored before the current state was kept); ``base_stored``: a snapshot was stored."""

    uuid: str
    base: InstanceState
    current: InstanceState | None
    kept: tuple[Kept, ...] = ()
    base_stored: bool = False

    @property
    def is_new(self) -> bool:
        """Nothing is known of the instance: its row was made for this batch."""
        return self.current is None and not self.base_stored and not self.kept

    def knows(self, candidate: Kept) -> bool:
        """Redelivered (same message id) or republished (same action, host and time)."""
        message_id, dedupe_key = candidate.message_id, candidate.dedupe_key
        return any(k.message_id == message_id or k.dedupe_key == dedupe_key for k in self.kept)

    def is_stale(self, event: InstanceEvent) -> bool:
        """Older than the snapshot: it can no longer be put in its place."""
        last = self.base.last_timestamp
        return last is not None and event.timestamp <= last

    def derive(self, event: InstanceEvent) -> InstanceState:
        """The state with ``event`` applied: folded on, or put in its place if late."""
        if self.current is not None and _is_after(event, self.current):
            return lifecycle.apply(self.current, event)
        return lifecycle.derive(self.base, [*(k.event for k in self.kept), event])


def _is_after(event: InstanceEvent, state: InstanceState) -> bool:
    return state.last_timestamp is None or event.timestamp > state.last_timestamp


@dataclasses.dataclass(frozen=True, slots=True)
class Admission:
    """What an event did: refused with a ``verdict``, or folded (verdict None)."""

    verdict: str | None
    record: Record


def admit(
    record: Record, event: InstanceEvent, purged_before: str | None, limit: int, ordinal: int
) -> Admission:
    """Fold ``event`` into ``record`` unless it is a duplicate, late past the snapshot,
    or after the delete. ``purged_before`` is the last tombstone purge: an unknown
    instance's event older than it may belong to a purged instance."""
    candidate = Kept.new(event, ordinal)  # its identity and time text, computed once
    if record.knows(candidate):
        return Admission(DUPLICATE, record)
    if record.base.deleted:
        return Admission(AFTER_DELETE, record)  # the tombstone: nothing resurrects an instance
    if record.is_new and purged_before is not None and candidate.time <= purged_before:
        return Admission(AFTER_DELETE, record)
    if record.is_stale(event):
        return Admission(STALE, record)
    state = record.derive(event)
    folded = Record(record.uuid, record.base, state, (*record.kept, candidate), record.base_stored)
    return Admission(None, _compact(folded, state, limit))


def _compact(record: Record, state: InstanceState, limit: int) -> Record:
    """Fold the oldest events into the snapshot; after a delete, fold them all."""
    if not state.deleted and len(record.kept) <= limit:
        return record
    ordered = sorted(record.kept, key=lambda k: k.order)
    keep = 0 if state.deleted else limit // 2
    folded, kept = ordered[: len(ordered) - keep], ordered[len(ordered) - keep :]
    base = lifecycle.derive(record.base, [k.event for k in folded])
    return dataclasses.replace(record, base=base, kept=tuple(kept))


@dataclasses.dataclass(frozen=True)
class Step:
    """One event of a batch after folding: its verdict and the state before and after."""

    event: InstanceEvent
    verdict: str | None
    before: InstanceState | None
    after: InstanceState | None
    rounding: str = PLACEMENT  # [accounting] disk_rounding

    @functools.cached_property
    def held_after(self) -> tuple[allocations.Allocation, ...]:
        """What the instance holds after the event (asked for several times per batch)."""
        return allocations.allocations(self.after, self.rounding) if self.after is not None else ()

    @functools.cached_property
    def moves(self) -> bool:
        """Folded, and its allocations differ from the state before (most events' do not)."""
        if self.verdict is not None or self.after is None:
            return False
        if self.before is None:
            return True
        if allocations.inputs(self.before) == allocations.inputs(self.after):
            return False
        return allocations.allocations(self.before, self.rounding) != self.held_after


def fold(
    records: dict[str, Record],
    events: Sequence[InstanceEvent],
    purged_before: str | None,
    limit: int,
    rounding: str = PLACEMENT,
) -> list[Step]:
    """Admit each event in arrival order, exactly as one event at a time would.

    ``records`` is updated in place to what each instance's stored history becomes;
    ``rounding`` is how the steps' holdings count swap ([accounting] disk_rounding).
    """
    steps = []
    for ordinal, event in enumerate(events):
        record = records[event.instance_uuid]
        admission = admit(record, event, purged_before, limit, ordinal)
        records[event.instance_uuid] = admission.record
        steps.append(Step(event, admission.verdict, record.current, admission.record.current, rounding))
    return steps
