"""Example: the tracker's capacity view inside ``nova-scheduler``, as a filter and a weigher.

Install ``tracker`` in nova-scheduler's environment, put this file on its
Python path, and in nova.conf::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = nova_tracker_scheduler.TrackerCapacityFilter
    enabled_filters = ComputeFilter,AvailabilityZoneFilter,TrackerCapacityFilter   # last
    weight_classes = nova_tracker_scheduler.TrackerRAMWeigher
    host_subset_size = 1

and in nova-scheduler's environment:

- ``TRACKER_TRANSPORT_URL``: the broker the tracker publishes on (often Nova's);
- ``TRACKER_EXCHANGE``: ``[capacity_notifications] exchange`` (default ``tracker``);
- ``TRACKER_SNAPSHOT``: optional, a ``tracker-status --format json`` file or a
  read-only database URL, for a scheduler that starts before the next
  announce interval has gone round.

Every scheduler process gets a listener pool of its own, so each one sees
every update: ``scheduler-<host>-<slot>``, the slot being the lowest one no
live process of this host holds (a lock file under ``TRACKER_SCHEDULER_LOCK_DIR``,
default the temporary directory). A restarted process takes its slot, and its
queue, again: a host has as many queues as it ever ran scheduler processes at
once (nova-scheduler's ``[scheduler] workers``), however often they restart.
The queues of a host that no longer runs a scheduler stay until deleted; a
RabbitMQ policy expires them, e.g.
``rabbitmqctl set_policy tracker-schedulers '^scheduler-' '{"expires": 3600000}'
--apply-to queues`` (an hour unused).

The filter passes a host only if the tracker knows it, its service is neither
disabled nor forced down, and it has room for the flavor after the pending
claims of this scheduler. The weigher prefers the most free memory after
those claims, and claims the request on the host it weighs highest: with
``host_subset_size = 1`` and this weigher alone (or dominant), that is the
host Nova picks. The claim ends when an update of the node shows the boot
counted (its usage grew by the claim, or it runs more instances) or after the
view's ``claim_timeout`` (300 s: Nova counts a boot only at
``instance.create.end``, after image download and spawn), so back-to-back
boots spread out instead of all landing on the emptiest node. Nova does not weigh a
lone candidate: when one host alone passes, the filter claims it (hence
listed last: no later filter may remove it). If another weigher
changes the order, the claim may sit on a runner-up until its timeout: it then
under-uses that node, and never over-fills one.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from nova.scheduler import filters, weights

from tracker.client import snapshot
from tracker.client.view import CapacityView, Request

_LOCK = threading.Lock()
_VIEW: CapacityView | None = None
_SLOT: IO[bytes] | None = None  # held open for the life of the process


def request_of(spec_obj: Any) -> Request:
    """What one instance of ``spec_obj`` needs, as Placement allocates it (Nova's
    ``resources_from_flavor``): swap in MiB rounded up to whole GiB."""
    flavor = spec_obj.flavor
    root_gb = 0 if getattr(spec_obj, "is_bfv", False) else flavor.root_gb
    return Request(
        vcpus=flavor.vcpus,
        memory_mb=flavor.memory_mb,
        disk_gb=root_gb + flavor.ephemeral_gb + -(-flavor.swap // 1024),
    )


def set_view(view: CapacityView | None) -> None:
    """Use ``view`` (tests, or a deployment that wires its own listener)."""
    global _VIEW  # noqa: PLW0603 - one view per scheduler process, as Nova's HostManager is
    with _LOCK:
        _VIEW = view


def shared_view() -> CapacityView:
    """The process's view: on first use, a listener is started, then the snapshot loaded."""
    global _VIEW  # noqa: PLW0603
    with _LOCK:
        if _VIEW is None:
            _VIEW = _listening_view()
        return _VIEW


def _listening_view() -> CapacityView:
    import oslo_messaging  # noqa: PLC0415 - nova-scheduler has it; tests never get here
    from oslo_config import cfg  # noqa: PLC0415

    global _SLOT  # held as long as the process lives
    view = CapacityView()
    conf = cfg.ConfigOpts()
    conf([])
    transport = oslo_messaging.get_notification_transport(conf, url=os.environ["TRACKER_TRANSPORT_URL"])
    target = oslo_messaging.Target(
        exchange=os.environ.get("TRACKER_EXCHANGE", "tracker"), topic="capacity_notifications"
    )
    lock_dir = Path(os.environ.get("TRACKER_SCHEDULER_LOCK_DIR", tempfile.gettempdir()))
    pool, _SLOT = pool_slot(lock_dir, socket.gethostname())
    oslo_messaging.get_notification_listener(
        transport, [target], [view], executor="threading", pool=pool
    ).start()
    source = os.environ.get("TRACKER_SNAPSHOT")
    if source:  # after the listener started: nothing falls between the two
        view.load(snapshot.from_database(source) if "://" in source else snapshot.from_status(source))
    return view


def pool_slot(lock_dir: Path, host: str) -> tuple[str, IO[bytes]]:
    """The listener pool of this process, ``scheduler-<host>-<slot>``, and the open lock
    file that holds the slot (released when the process ends, however it ends)."""
    for slot in range(1024):
        held = (lock_dir / f"tracker-scheduler-{slot}.lock").open("ab")
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.close()
            continue
        return f"scheduler-{host}-{slot}", held
    raise RuntimeError(f"no free scheduler slot under {lock_dir}")


class TrackerCapacityFilter(filters.BaseHostFilter):  # type: ignore[misc]
    """Passes hosts the tracker says have room for the flavor, after pending claims."""

    RUN_ON_REBUILD = False  # a rebuild stays on its host and needs no new room

    def host_passes(self, host_state: Any, spec_obj: Any) -> bool:
        room = shared_view().room(host_state.host, host_state.nodename)
        if room is None:  # unknown to the tracker, unregistered, disabled or forced down
            return False
        need = request_of(spec_obj)
        return room[0] >= need.vcpus and room[1] >= need.memory_mb and room[2] >= need.disk_gb

    def filter_all(self, filter_obj_list: Any, spec_obj: Any) -> list[Any]:
        passing = list(super().filter_all(filter_obj_list, spec_obj))
        if len(passing) == 1:  # Nova picks it without weighing: the weigher cannot claim it
            shared_view().claim(passing[0].host, passing[0].nodename, request_of(spec_obj))
        return passing


class TrackerRAMWeigher(weights.BaseHostWeigher):  # type: ignore[misc]
    """Spreads by free memory after pending claims, and claims the top host."""

    minval = 0

    def _weigh_object(self, host_state: Any, weight_properties: Any) -> float:
        room = shared_view().room(host_state.host, host_state.nodename)
        return 0.0 if room is None else float(room[1])

    def weigh_objects(self, weighed_obj_list: list[Any], weight_properties: Any) -> list[float]:
        weights_list: list[float] = super().weigh_objects(weighed_obj_list, weight_properties)
        if weighed_obj_list:
            best = max(range(len(weights_list)), key=weights_list.__getitem__)
            host_state = weighed_obj_list[best].obj
            shared_view().claim(host_state.host, host_state.nodename, request_of(weight_properties))
        return weights_list
