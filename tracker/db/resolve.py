"""Which node a location means, among the nodes of the hosts a batch touches (pure).

A location named in full is that node, created if new; a placeholder of that
name is confirmed as real. A host-only location (a move's destination before
the instance moves) is the node the instance already holds on that host, or
the host's best node: a real node over a placeholder, a registered one, the
one named like its host (libvirt), then the oldest; a host with no node at
all gets a placeholder named after it.
"""

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from tracker.accounting.state import Location
from tracker.db.nodes import NodeKey, NodeRecord


@dataclasses.dataclass
class _Entry:
    placeholder: bool
    registered: bool
    order: tuple[int, int]  # existing rows by id, then those created here in creation order


class Catalogue:
    """The locked nodes of a batch's hosts, plus what resolving creates or confirms."""

    def __init__(self, nodes: Iterable[NodeRecord]) -> None:
        self._entries = {n.key: _Entry(n.placeholder, n.vcpus is not None, (0, n.id)) for n in nodes}
        self.created: dict[NodeKey, bool] = {}  # key -> placeholder
        self.confirmed: set[NodeKey] = set()

    def resolve(self, locations: Sequence[Location], known: Mapping[str, NodeKey]) -> list[NodeKey]:
        """The node of each location, as one event sees them: what is missing is
        created first, then all are resolved (placeholders only for hosts with no node)."""
        for location in [loc for loc in locations if self._is_missing(loc, known)]:
            self._add(location)
        return [self._find(location, known) for location in locations]

    def _is_missing(self, location: Location, known: Mapping[str, NodeKey]) -> bool:
        if location.node is not None:
            entry = self._entries.get((location.host, location.node))
            return entry is None or entry.placeholder
        return location.host not in known and not self._of_host(location.host)

    def _add(self, location: Location) -> None:
        key = (location.host, location.node or location.host)
        entry = self._entries.get(key)
        if entry is None:
            placeholder = location.node is None
            self._entries[key] = _Entry(placeholder, False, (1, len(self.created)))
            self.created[key] = placeholder
        elif location.node is not None and entry.placeholder:
            entry.placeholder = False
            if key in self.created:
                self.created[key] = False
            else:
                self.confirmed.add(key)

    def _find(self, location: Location, known: Mapping[str, NodeKey]) -> NodeKey:
        if location.node is not None:
            return (location.host, location.node)
        if location.host in known:
            return known[location.host]
        return min(self._of_host(location.host), key=self._preference)

    def _of_host(self, host: str) -> list[NodeKey]:
        return [key for key in self._entries if key[0] == host]

    def _preference(self, key: NodeKey) -> tuple[bool, bool, bool, tuple[int, int]]:
        entry = self._entries[key]
        return (entry.placeholder, not entry.registered, key[1] != key[0], entry.order)
