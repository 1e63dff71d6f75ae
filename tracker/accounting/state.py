"""The per-instance record the accounting derives: location, flavor, pending move."""

import dataclasses
import datetime

from tracker.events.model import Flavor

RESIZE = "resize"
LIVE_MIGRATION = "live_migration"
EVACUATE = "evacuate"


@dataclasses.dataclass(frozen=True, slots=True)
class Location:
    """A compute node; ``node`` is None while only its host is known.

    Nova names a move's destination only by the publisher host until the
    instance actually moves; the database layer resolves such a location to
    that host's node.
    """

    host: str
    node: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Move:
    """A resize, live migration or evacuation between its claim and its end."""

    kind: str
    source: Location | None
    dest: Location
    old_flavor: Flavor | None
    new_flavor: Flavor | None
    dest_held: bool = True
    # resize only: instance.host/node already switched to the destination
    switched: bool = False
    # resize only: resize.error came before resize_prep.end, so no claim stands
    prep_failed: bool = False
    # resize only: Nova's request id of the resize, and of its confirmation;
    # a failure is matched to the move by them
    request_id: str | None = None
    confirm_request_id: str | None = None
    # resize only: the source sent resize.start for ``request_id``, so the
    # destination's prep_resize is over (it casts resize_instance last)
    source_started: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceState:
    """What is known of one instance after folding its events in order.

    ``location`` is where the instance row counts (Nova's instance.host/node),
    None when it counts nowhere: not yet claimed, failed build,
    shelved-offloaded. ``deleted`` is a tombstone: nothing after it counts.
    """

    uuid: str
    project_id: str | None = None
    location: Location | None = None
    flavor: Flavor | None = None
    boot_from_volume: bool = False
    vm_state: str | None = None
    task_state: str | None = None
    move: Move | None = None
    deleted: bool = False
    last_timestamp: datetime.datetime | None = None
    # The request whose failure ended the last move: its later (or late)
    # events must not open that move again.
    failed_request: str | None = None
    # The move a failure ended before its switch, the destination freed: a
    # resize.start or resize.end of its request folded after the failure
    # proves the failure was finish_resize's (lifecycle._after_failure).
    failed_move: Move | None = None
