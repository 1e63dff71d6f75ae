"""From an instance's derived state to what it holds on each node."""

import dataclasses

from tracker.accounting.state import RESIZE, InstanceState, Location
from tracker.accounting.usage import PLACEMENT, Usage, usage_of
from tracker.events.model import Flavor

INSTANCE = "instance"
MOVE_DEST = "move_dest"
MOVE_SOURCE = "move_source"


@dataclasses.dataclass(frozen=True, slots=True)
class Allocation:
    """Usage one instance holds on one node in one role.

    ``instance`` is the instance row itself (it counts in running_vms);
    ``move_dest`` is a destination's claim before the instance moved there;
    ``move_source`` is the old flavor a resized instance keeps on its source
    until the resize is confirmed.
    """

    location: Location
    role: str
    usage: Usage


def inputs(state: InstanceState) -> tuple[object, ...]:
    """Every field of ``state`` that :func:`allocations` reads: two states with equal
    inputs hold the same (comparing them is much cheaper than deriving both)."""
    return (state.deleted, state.move, state.location, state.flavor, state.boot_from_volume)


def allocations(state: InstanceState, rounding: str = PLACEMENT) -> tuple[Allocation, ...]:
    """What ``state`` holds, node by node; ``rounding`` is [accounting] disk_rounding.
    Reads only the fields :func:`inputs` names."""
    if state.deleted:
        return ()
    move = state.move
    held: tuple[Allocation | None, ...]
    if move is not None and move.kind == RESIZE and move.switched:
        held = (
            _hold(move.dest, INSTANCE, move.new_flavor, state, rounding),
            _hold(move.source, MOVE_SOURCE, move.old_flavor, state, rounding),
        )
    else:
        held = (_hold(state.location, INSTANCE, state.flavor, state, rounding),)
        if move is not None and move.dest_held:
            held += (_hold(move.dest, MOVE_DEST, move.new_flavor, state, rounding),)
    return tuple(a for a in held if a is not None)


def _hold(
    location: Location | None, role: str, flavor: Flavor | None, state: InstanceState, rounding: str
) -> Allocation | None:
    if location is None or flavor is None:
        return None
    return Allocation(location, role, usage_of(flavor, state.boot_from_volume, rounding))
