"""Nova's instance lifecycles as a fold over the instance's events.

An instance's state is a pure function of its events in timestamp order, so a
late event is put in its place and the state derived again, instead of
applying deltas that depend on arrival order. The rules follow Nova's
resource tracker as summarized in nova-events.md ("Instance event types and
what they mean for accounting", "Move accounting, by host").
"""

import dataclasses
from collections.abc import Callable, Iterable

from tracker.accounting.state import (
    EVACUATE,
    LIVE_MIGRATION,
    RESIZE,
    InstanceState,
    Location,
    Move,
)
from tracker.events.model import FAILURE, InstanceEvent

Handler = Callable[[InstanceState, InstanceEvent], InstanceState]

# vm_states.allow_resource_removal: these stop counting, unless spawning.
_REMOVED_STATES = frozenset({"deleted", "shelved_offloaded"})
# instance.live_migration_post.end is sent after the source already dropped the
# instance but still names the source: it must move nothing.
_STALE_ACTIONS = frozenset({"live_migration_post.start", "live_migration_post.end"})
_SNAPSHOT_ACTIONS = frozenset({"exists", "update"})
# Snapshots taken mid-move that still say "no task" are only trusted to end a
# resize or live migration; an evacuation's payload names the failed host
# until finish_evacuation runs after rebuild.end.
_SETTLED_BY_SNAPSHOT = frozenset({RESIZE, LIVE_MIGRATION})


def order_key(event: InstanceEvent) -> tuple[str, str]:
    return (event.timestamp.isoformat(), event.message_id)


def derive(base: InstanceState, events: Iterable[InstanceEvent]) -> InstanceState:
    """Fold ``events``, sorted by their notification timestamp, onto ``base``."""
    state = base
    for event in sorted(events, key=order_key):
        state = apply(state, event)
    return state


def apply(state: InstanceState, event: InstanceEvent) -> InstanceState:
    if state.deleted or event.action in _STALE_ACTIONS:
        return state
    if event.action == FAILURE:
        return _failure(dataclasses.replace(state, last_timestamp=event.timestamp), event)
    state = _note(state, event)
    if event.request_id is not None and event.request_id == state.failed_request:
        return _after_failure(state, event)
    return _HANDLERS.get(event.action, _observe)(state, event)


def _after_failure(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """An event of the request whose move a failure ended: that move is over.

    (e.g. the destination's resize_prep.end, sent in a ``finally`` after the
    source already failed.) Except the source's resize.start or resize.end
    folded after a failure taken as freeing the destination: neither can
    follow a failed prep_resize (it casts resize_instance last) or a failed
    resize_instance (it sends resize.end last), so the failure was
    finish_resize's, cast before resize.end and stamped by another clock or
    thread: the instance keeps the new flavor on the destination.
    """
    failed = state.failed_move
    if failed is None or event.action not in _SOURCE_RESIZE_ACTIONS:
        return state
    dest = _payload_location(event) if event.action == "resize.end" else None
    return dataclasses.replace(state, location=dest or failed.dest, flavor=failed.new_flavor or state.flavor)


_SOURCE_RESIZE_ACTIONS = frozenset({"resize.start", "resize.end"})


def _note(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """Record what every event carries: states, owner, image kind, time."""
    return dataclasses.replace(
        state,
        project_id=event.project_id or state.project_id,
        vm_state=event.vm_state,
        task_state=event.task_state,
        boot_from_volume=event.boot_from_volume,
        last_timestamp=event.timestamp,
    )


def _payload_location(event: InstanceEvent) -> Location | None:
    return Location(event.host, event.node) if event.host else None


def _publisher_location(event: InstanceEvent, state: InstanceState) -> Location:
    host = event.publisher_host or (state.location.host if state.location else "unknown")
    return Location(host)


def _is_removed(event: InstanceEvent) -> bool:
    if event.vm_state == "shelved_offloaded":
        return event.task_state != "spawning"
    return event.vm_state in _REMOVED_STATES


def _observe(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """Take the payload as the truth when no move is under way.

    Every instance payload carries host, node, state and flavor, so an
    instance first seen mid-life (tracker started late, event lost) is
    picked up by whatever event comes next, and drift is repaired.
    """
    if event.vm_state == "deleted":
        return _delete(state, event)
    if state.move is not None:
        return state
    flavor = event.flavor or state.flavor
    location = None if _is_removed(event) else _payload_location(event)
    if location == state.location and flavor == state.flavor:
        return state  # most events: no copy to make
    return dataclasses.replace(state, location=location, flavor=flavor)


def _snapshot(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """``instance.exists`` / ``instance.update``: full snapshots that can end a move."""
    move = state.move
    if move is not None and _settles(move, event):
        state = dataclasses.replace(state, move=None)
    return _observe(state, event)


def _settles(move: Move, event: InstanceEvent) -> bool:
    return (
        move.kind in _SETTLED_BY_SNAPSHOT
        and event.task_state is None
        and event.vm_state != "resized"
        and event.host is not None
    )


def _claim(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """create.end / unshelve.end: the claim was made on the payload's node."""
    return dataclasses.replace(
        state,
        location=_payload_location(event),
        flavor=event.flavor or state.flavor,
        move=None,
    )


def _release(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """create.error / shelve_offload.end: the claim is gone, nothing counts."""
    return dataclasses.replace(state, location=None, move=None, flavor=event.flavor or state.flavor)


def _delete(state: InstanceState, event: InstanceEvent) -> InstanceState:
    return dataclasses.replace(state, location=None, move=None, deleted=True)


def _resize_move(state: InstanceState, event: InstanceEvent) -> Move:
    return Move(
        kind=RESIZE,
        source=_payload_location(event) or state.location,
        dest=_publisher_location(event, state),
        old_flavor=event.flavor or state.flavor,
        new_flavor=event.new_flavor or event.flavor or state.flavor,
        dest_held=False,
        request_id=event.request_id,
    )


def _current_resize(state: InstanceState, event: InstanceEvent) -> Move | None:
    move = state.move
    if move is None or move.kind != RESIZE or move.switched:
        return None
    return move if move.dest.host == event.publisher_host else None


def _resize_prep_start(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """Sent by the destination; the claim has not been made yet."""
    move = _resize_move(state, event)
    return dataclasses.replace(state, move=move, location=move.source, flavor=move.old_flavor)


def _resize_error(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """The destination's claim failed or was given up for a reschedule."""
    move = _current_resize(state, event)
    if move is None:
        return state
    failed = dataclasses.replace(move, dest_held=False, prep_failed=True)
    return dataclasses.replace(state, move=failed)


def _resize_prep_end(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """Sent in a ``finally``: the destination holds the new flavor unless resize.error came."""
    move = _current_resize(state, event) or _resize_move(state, event)
    if move.prep_failed:
        return dataclasses.replace(state, move=None)
    # Legacy resize.prep.start names no new flavor; resize.prep.end does.
    held = dataclasses.replace(move, dest_held=True, new_flavor=event.new_flavor or move.new_flavor)
    return dataclasses.replace(state, move=held, location=move.source)


def _resize_start(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """The source starts resize_instance for the move's request: its prep is over."""
    move = state.move
    if move is None or move.kind != RESIZE or event.request_id is None or event.request_id != move.request_id:
        return _observe(state, event)
    return dataclasses.replace(state, move=dataclasses.replace(move, source_started=True))


def _resize_end(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """The source switched instance.host/node to the destination, now named in full."""
    move = state.move
    if move is None or move.kind != RESIZE:
        move = _resize_move(state, event)
        move = dataclasses.replace(move, source=state.location)
    dest = _payload_location(event) or move.dest
    switched = dataclasses.replace(move, dest=dest, switched=True, dest_held=True)
    return dataclasses.replace(state, move=switched, location=dest)


def _resize_finish(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """The destination applied the new flavor; both nodes still hold."""
    move = state.move
    if move is None or move.kind != RESIZE:
        return _observe(state, event)
    finished = dataclasses.replace(move, new_flavor=event.flavor or move.new_flavor)
    return dataclasses.replace(state, move=finished, flavor=event.flavor or state.flavor)


def _resize_confirm(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """The source dropped the old flavor; the instance stays on the destination."""
    move = state.move
    if move is None or move.kind != RESIZE:
        return _observe(state, event)
    return dataclasses.replace(
        state,
        move=None,
        location=_payload_location(event) or move.dest,
        flavor=move.new_flavor or event.flavor,
    )


def _resize_confirm_start(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """The source starts confirming: remember the confirmation's request id."""
    move = state.move
    if move is None or move.kind != RESIZE:
        return _observe(state, event)
    return dataclasses.replace(state, move=dataclasses.replace(move, confirm_request_id=event.request_id))


def _resize_revert_start(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """The destination already dropped the new flavor; the source keeps the old one."""
    move = state.move
    if move is None or move.kind != RESIZE:
        return state
    return dataclasses.replace(state, move=None, location=move.source, flavor=move.old_flavor or state.flavor)


def _resize_revert_end(state: InstanceState, event: InstanceEvent) -> InstanceState:
    return _observe(dataclasses.replace(state, move=None), event)


def _hold_destination(kind: str) -> Handler:
    """live_migration_pre.* / evacuating rebuild.start: the publisher claimed."""

    def hold(state: InstanceState, event: InstanceEvent) -> InstanceState:
        if state.move is not None and state.move.kind == kind:
            return state
        flavor = event.flavor or state.flavor
        move = Move(
            kind=kind,
            source=_payload_location(event) or state.location,
            dest=_publisher_location(event, state),
            old_flavor=flavor,
            new_flavor=flavor,
        )
        return dataclasses.replace(state, move=move, location=move.source, flavor=flavor)

    return hold


_live_pre = _hold_destination(LIVE_MIGRATION)
_evacuate_claim = _hold_destination(EVACUATE)


def _live_post_dest_end(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """The instance now lives on the destination, named in the payload."""
    return _observe(dataclasses.replace(state, move=None), event)


def _live_rollback(state: InstanceState, event: InstanceEvent) -> InstanceState:
    if state.move is None or state.move.kind != LIVE_MIGRATION:
        return state
    return dataclasses.replace(state, move=None)


def _live_rollback_dest(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """May come after rollback.end; only drops the hold of that destination."""
    move = state.move
    if move is None or move.kind != LIVE_MIGRATION or move.dest.host != event.publisher_host:
        return state
    return dataclasses.replace(state, move=None)


def _is_evacuation(event: InstanceEvent) -> bool:
    """A rebuild published by another host than the instance's is an evacuation."""
    return bool(event.host and event.publisher_host and event.host != event.publisher_host)


def _rebuild_start(state: InstanceState, event: InstanceEvent) -> InstanceState:
    if _is_evacuation(event):
        return _evacuate_claim(state, event)
    return _observe(state, event)


def _rebuild_end(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """finish_evacuation runs after rebuild.end: the payload still names the failed host."""
    move = state.move
    if move is not None and move.kind == EVACUATE:
        return dataclasses.replace(state, move=None, location=move.dest)
    if _is_evacuation(event):
        return dataclasses.replace(state, move=None, location=_publisher_location(event, state))
    return _observe(state, event)


def _rebuild_error(state: InstanceState, event: InstanceEvent) -> InstanceState:
    if state.move is None or state.move.kind != EVACUATE:
        return state
    return dataclasses.replace(state, move=None)


def _failure(state: InstanceState, event: InstanceEvent) -> InstanceState:
    """A compute function of a resize or cold migration failed: account as Placement.

    Nova's compute manager, for the request the failure belongs to:
    - before the instance switched hosts (``prep_resize`` on the destination
      without reschedule, ``resize_instance`` on the source): ``_revert_allocation``
      gives the source's allocation back to the instance, the destination's
      claim is freed;
    - after it switched (``finish_resize`` on the destination) and when the
      confirmation fails on the source (``confirm_resize``):
      ``_delete_allocation_after_move`` frees the source, the instance keeps
      the new flavor on the destination.
    Anything else, late or duplicate failures included, changes nothing: live
    migration and evacuation failures are reported by their rollback and
    ``rebuild.error`` notifications, which the other handlers account.
    """
    move, failure = state.move, event.failure
    if move is None or move.kind != RESIZE or event.request_id is None or failure is None:
        return state
    step = _failed_step(move, event, failure.function)
    if step is None:
        return state
    if step in _DESTINATION_FREED:
        kept = dataclasses.replace(state, location=move.source, flavor=move.old_flavor or state.flavor)
    else:
        kept = dataclasses.replace(state, location=move.dest, flavor=move.new_flavor or state.flavor)
    failed_move = move if step in _DESTINATION_FREED else None
    return dataclasses.replace(kept, move=None, failed_request=event.request_id, failed_move=failed_move)


_DESTINATION_FREED = frozenset({"prep_resize", "resize_instance"})


def _failed_step(move: Move, event: InstanceEvent, function: str | None) -> str | None:
    """The compute manager function a failure of this move comes from; None if not the move's.

    Only the legacy format names the function, and then it must be a candidate.
    A versioned failure takes the first candidate. Before the switch that
    frees the destination, even where it was finish_resize's (cast before
    resize.end, it may fail and be stamped, by the destination's clock, before
    it): the source's resize.start or resize.end folded later corrects it
    (:func:`_after_failure`). A destination failure after the source's
    resize.start of another host is finish_resize's: prep_resize was over.
    """
    publisher = event.publisher_host
    source = move.source.host if move.source else None
    candidates: list[str] = []
    if move.switched:
        if event.request_id == move.request_id and publisher == move.dest.host:
            candidates.append("finish_resize")
        if event.request_id == move.confirm_request_id and publisher == source:
            candidates.append("confirm_resize")
    elif event.request_id == move.request_id:
        if publisher == move.dest.host:
            prepared = move.source_started and publisher != source
            candidates.extend(["finish_resize"] if prepared else ["prep_resize", "finish_resize"])
        if publisher == source:
            candidates.append("resize_instance")
    if function is not None:
        return function if function in candidates else None
    return candidates[0] if candidates else None


_HANDLERS: dict[str, Handler] = {
    "create.end": _claim,
    "create.error": _release,
    "delete.end": _delete,
    "shelve_offload.end": _release,
    "unshelve.end": _claim,
    "resize_prep.start": _resize_prep_start,
    "resize.error": _resize_error,
    "resize_prep.end": _resize_prep_end,
    "resize.start": _resize_start,
    "resize.end": _resize_end,
    "resize_finish.start": _resize_finish,
    "resize_finish.end": _resize_finish,
    "resize_confirm.start": _resize_confirm_start,
    "resize_confirm.end": _resize_confirm,
    "resize_revert.start": _resize_revert_start,
    "resize_revert.end": _resize_revert_end,
    "live_migration_pre.start": _live_pre,
    "live_migration_pre.end": _live_pre,
    "live_migration_post_dest.end": _live_post_dest_end,
    "live_migration_rollback.end": _live_rollback,
    "live_migration_rollback_dest.start": _live_rollback_dest,
    "live_migration_rollback_dest.end": _live_rollback_dest,
    "rebuild.start": _rebuild_start,
    "rebuild.end": _rebuild_end,
    "rebuild.error": _rebuild_error,
    "exists": _snapshot,
    "update": _snapshot,
}
