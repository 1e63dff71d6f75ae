"""A capacity view for schedulers, fed by a stock oslo.messaging notification listener.

    view = CapacityView()
    listener = oslo_messaging.get_notification_listener(
        transport,
        [oslo_messaging.Target(exchange="tracker", topic="capacity_notifications")],
        [view], executor="threading", pool="scheduler-1")
    listener.start()
    view.load(snapshot.from_status(Path("status.json")))   # or snapshot.from_database(url)
    node = view.pick(vcpus=4, memory_mb=16384, disk_gb=40, availability_zone="az1")

Notifications are absolute, so the view only ever keeps the newest generation
of each node: a notification that arrives late (redelivered, reordered across
relays, older than the snapshot) is dropped, never applied over a newer one.
Start the listener before loading the snapshot: nothing is then missed, and
whichever of the two is newer wins.

The scheduler's own picks are pending claims: they count against the node
until an update of that node shows them counted (its usage grew by the claim,
or it runs more instances than when claimed), or ``claim_timeout`` passes, so
that back-to-back picks spread out instead of all landing on the node that
looked emptiest. A newer generation alone is not enough: a service or aggregate
change bumps it too. Nova counts a boot at ``instance.create.end``, after the
image download and the spawn, so the timeout (default 300 s) must outlast the
slowest boot; a boot that fails is counted by no update and holds its room
until then.
"""

import dataclasses
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tracker import escape

LOG = logging.getLogger(__name__)

EVENT_TYPE = "capacity.update"
ALERT_TYPES = ("capacity.overcommit", "quota.exceeded")
RESOURCES = ("vcpus", "memory_mb", "local_gb")
MAJOR_VERSION = "1"  # the payload versions this view reads: 1.x (and those before 1.0)
_SAID_AT_MOST = 100  # distinct refusal reasons logged; the rest are only counted

Node = tuple[str, str]  # (host, nodename)


@dataclasses.dataclass(frozen=True)
class Request:
    """What one instance needs; ``disk_gb`` as Placement allocates it: root + ephemeral +
    swap/1024 rounded up (the tracker's own accounting rounds swap down, as Nova's
    resource tracker does, until [accounting] disk_rounding from the Nova branch)."""

    vcpus: int
    memory_mb: int
    disk_gb: int


@dataclasses.dataclass
class _Entry:
    """One node, flattened for the fit query (which reads every node)."""

    payload: dict[str, Any]
    generation: int
    used: tuple[int, ...]  # vcpus, memory_mb, local_gb
    running_vms: int
    free: list[int] | None  # vcpus, memory_mb, local_gb; None while inventory is unknown
    usable: bool  # neither disabled nor forced down
    zone: str | None
    aggregates: frozenset[str]  # uuids and names
    claimed: list[int] = dataclasses.field(default_factory=lambda: [0, 0, 0])
    claims: list["_Claim"] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(eq=False)
class _Claim:
    node: Node
    amounts: tuple[int, int, int]
    # what the node reported when claimed, plus the claims pending before this one:
    # the usage and instance count at which the tracker has counted this claim too
    used_when_counted: tuple[int, ...]
    running_vms_when_counted: int
    deadline: float
    released: bool = False

    def counted_by(self, entry: _Entry) -> bool:
        return entry.running_vms >= self.running_vms_when_counted or all(
            used >= counted for used, counted in zip(entry.used, self.used_when_counted, strict=True)
        )


class Refused(ValueError):
    """A payload this view cannot read: another major version, or malformed."""


def _entry(payload: Any) -> _Entry:
    if not isinstance(payload, dict):
        raise Refused(f"malformed capacity.update: a {type(payload).__name__}, not an object")
    version = payload.get("version", "0.0")
    if not isinstance(version, str):
        raise Refused(f"malformed capacity.update: version is a {type(version).__name__}, not text")
    if version.split(".")[0] not in (MAJOR_VERSION, "0"):
        raise Refused(
            f"capacity.update version {escape.text(version, 20)} is not read by this view "
            f"(it reads {MAJOR_VERSION}.x): upgrade tracker.client"
        )
    try:
        return _checked_entry(payload)
    except (KeyError, TypeError, AttributeError) as error:
        raise Refused(
            f"malformed capacity.update: {type(error).__name__} {escape.text(error, 100)}"
        ) from None


def _checked_entry(payload: dict[str, Any]) -> _Entry:
    resources = payload["resources"]
    used = tuple(_number(resources[name]["used"]) for name in RESOURCES)
    frees = [resources[name]["free"] for name in RESOURCES]
    if not all(free is None or isinstance(free, int) for free in frees):
        raise TypeError("a free amount is not an integer")
    _key(payload)
    aggregates = payload.get("aggregates") or ()
    return _Entry(
        payload=payload,
        generation=_number(payload["generation"]),
        used=used,
        running_vms=_number(payload["running_vms"]),
        free=None if any(free is None for free in frees) else frees,
        usable=not payload.get("disabled", False) and not payload.get("forced_down", False),
        zone=payload.get("availability_zone"),
        aggregates=frozenset(
            name for aggregate in aggregates for name in (aggregate["uuid"], aggregate["name"])
        ),
    )


def _key(payload: Mapping[str, Any]) -> Node:
    # "nodename" since payload 1.0; "node" before
    key = (payload["host"], payload.get("nodename", payload.get("node")))
    if not all(isinstance(name, str) for name in key):
        raise TypeError("host or nodename is not a string")
    return key


def _number(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not an integer")
    return value


class CapacityView:
    """An oslo.messaging notification endpoint (``info``, ``error``) plus the view it maintains."""

    def __init__(self, claim_timeout: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.RLock()
        self._nodes: dict[Node, _Entry] = {}
        self._claim_timeout = claim_timeout
        self._clock = clock
        self._deadlines: list[tuple[float, int, _Claim]] = []  # heap: the next claim to expire first
        self._order = itertools.count()
        self.dropped = 0
        self.rejected = 0  # payloads refused: another major version, or malformed
        self._said: set[str] = set()
        self.alerts: list[tuple[str, dict[str, Any]]] = []

    # -- the notification endpoint ---------------------------------------------------------

    def info(
        self, ctxt: Any, publisher_id: str, event_type: str, payload: dict[str, Any], metadata: Any
    ) -> None:
        if event_type == EVENT_TYPE:
            self.offer(payload)

    def error(
        self, ctxt: Any, publisher_id: str, event_type: str, payload: dict[str, Any], metadata: Any
    ) -> None:
        """Over-commit and quota alerts: kept for whoever looks (the last 1 000)."""
        if event_type in ALERT_TYPES:
            with self._lock:
                self.alerts = [*self.alerts[-999:], (event_type, payload)]

    # -- feeding the view ------------------------------------------------------------------

    def offer(self, payload: dict[str, Any]) -> bool:
        """Keep ``payload`` if it is newer than what we have; True if kept. A payload of
        another major version, or malformed, is refused (never raised: this runs in the
        listener's callback) and said once per reason."""
        try:
            entry = _entry(payload)
        except Refused as refused:
            self._refuse(str(refused))
            return False
        key = _key(payload)
        with self._lock:
            current = self._nodes.get(key)
            if current is not None and current.generation >= entry.generation:
                self.dropped += 1
                return False
            if current is not None:
                self._carry_claims(current, entry)
            self._nodes[key] = entry
            return True

    def _refuse(self, reason: str) -> None:
        with self._lock:
            self.rejected += 1
            if reason in self._said or len(self._said) >= _SAID_AT_MOST:
                return
            self._said.add(reason)
        LOG.warning("%s (said once; CapacityView.rejected counts them)", reason)

    def load(self, payloads: Iterable[dict[str, Any]]) -> int:
        """A snapshot (``tracker.client.snapshot``); returns how many nodes it made newer."""
        return sum(self.offer(payload) for payload in payloads)

    # -- reading it ------------------------------------------------------------------------

    def get(self, host: str, node: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._nodes.get((host, node))
            return entry.payload if entry else None

    def __len__(self) -> int:
        return len(self._nodes)

    def nodes(self) -> list[Node]:
        with self._lock:
            return list(self._nodes)

    def free(self, resource: str) -> dict[Node, int | None]:
        """Free capacity of one resource class on every node (None: inventory unknown),
        as the tracker last reported it (pending claims not deducted)."""
        with self._lock:
            return {key: entry.payload["resources"][resource]["free"] for key, entry in self._nodes.items()}

    def fits(
        self, request: Request, availability_zone: str | None = None, aggregate: str | None = None
    ) -> list[Node]:
        """Nodes that have room for ``request`` after pending claims, most free memory
        first; disabled, forced-down and unregistered nodes never fit. ``aggregate`` is
        an aggregate's uuid or name."""
        with self._lock:
            found = self._fitting(request, availability_zone, aggregate)
        found.sort()
        return [key for _order, key in found]

    def _fitting(
        self, request: Request, availability_zone: str | None, aggregate: str | None
    ) -> list[tuple[tuple[int, Node], Node]]:
        """(sort order: most free memory first, then by name; node) of every node that fits."""
        self._expire()
        vcpus, memory_mb, disk_gb = request.vcpus, request.memory_mb, request.disk_gb
        return [
            ((entry.claimed[1] - free[1], key), key)
            for key, entry in self._nodes.items()
            if entry.usable
            and (free := entry.free) is not None
            and free[0] - entry.claimed[0] >= vcpus
            and free[1] - entry.claimed[1] >= memory_mb
            and free[2] - entry.claimed[2] >= disk_gb
            and (availability_zone is None or entry.zone == availability_zone)
            and (aggregate is None or aggregate in entry.aggregates)
        ]

    def room(self, host: str, node: str) -> tuple[int, int, int] | None:
        """Free vcpus, memory_mb, local_gb after pending claims; None if unknown or unusable."""
        with self._lock:
            self._expire()
            entry = self._nodes.get((host, node))
            if entry is None or entry.free is None or not entry.usable:
                return None
            free, claimed = entry.free, entry.claimed
            return (free[0] - claimed[0], free[1] - claimed[1], free[2] - claimed[2])

    # -- the scheduler's own picks ------------------------------------------------------------

    def claim(self, host: str, node: str, request: Request) -> bool:
        """Count ``request`` against the node until an update shows it counted or
        ``claim_timeout`` passes. False, and nothing counted, if the node has no room
        for it (any more: another thread may have just taken it) or is unknown."""
        with self._lock:
            room = self.room(host, node)
            if room is None or any(free < need for free, need in zip(room, _amounts(request), strict=True)):
                return False
            entry = self._nodes[(host, node)]
            amounts = _amounts(request)
            claim = _Claim(
                (host, node),
                amounts,
                tuple(
                    used + ahead + amount
                    for used, ahead, amount in zip(entry.used, entry.claimed, amounts, strict=True)
                ),
                entry.running_vms + len(entry.claims) + 1,
                self._clock() + self._claim_timeout,
            )
            entry.claims.append(claim)
            _add(entry.claimed, claim.amounts, 1)
            heapq.heappush(self._deadlines, (claim.deadline, next(self._order), claim))
            return True

    def pick(
        self, request: Request, availability_zone: str | None = None, aggregate: str | None = None
    ) -> Node | None:
        """The node with the most free memory that fits, claimed; None if none fits."""
        with self._lock:  # re-entrant: two threads never both take a node's last room
            candidates = self._fitting(request, availability_zone, aggregate)
            if not candidates:
                return None
            _order, best = min(candidates)
            self.claim(*best, request)
            return best

    def pending_claims(self) -> int:
        with self._lock:
            self._expire()
            return sum(len(entry.claims) for entry in self._nodes.values())

    def _carry_claims(self, old: _Entry, new: _Entry) -> None:
        """Claims the new update shows counted end; the others carry over."""
        for claim in old.claims:
            if claim.counted_by(new):
                claim.released = True
            else:
                new.claims.append(claim)
                _add(new.claimed, claim.amounts, 1)

    def _expire(self) -> None:
        now = self._clock()
        while self._deadlines and self._deadlines[0][0] <= now:
            claim = heapq.heappop(self._deadlines)[2]
            if claim.released:
                continue
            claim.released = True
            entry = self._nodes.get(claim.node)
            if entry is not None and claim in entry.claims:
                entry.claims.remove(claim)
                _add(entry.claimed, claim.amounts, -1)


class BatchEndpoint:
    """The view behind oslo.messaging's *batch* listener, which hands over up to
    ``batch_size`` messages at once and costs about half the CPU per message:

        oslo_messaging.get_batch_notification_listener(
            transport, targets, [BatchEndpoint(view)], executor="threading",
            pool="scheduler-1", batch_size=500, batch_timeout=0.1)
    """

    def __init__(self, view: CapacityView) -> None:
        self.view = view

    def info(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.view.info(*_arguments(message))

    def error(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.view.error(*_arguments(message))


def _arguments(message: Mapping[str, Any]) -> tuple[Any, str, str, dict[str, Any], Any]:
    return (
        message["ctxt"],
        message["publisher_id"],
        message["event_type"],
        message["payload"],
        message["metadata"],
    )


def _amounts(request: Request) -> tuple[int, int, int]:
    return (request.vcpus, request.memory_mb, request.disk_gb)


def _add(totals: list[int], amounts: tuple[int, int, int], sign: int) -> None:
    for index, amount in enumerate(amounts):
        totals[index] += sign * amount
