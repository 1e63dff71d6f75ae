"""A capacity view for schedulers, fed by a stock oslo.messaging notification listener.

    view = CapacityView()
    listener = oslo_messaging.get_notification_listener(
        transport,
        [oslo_messaging.Target(exchange="tracker", topic="capacity_notifications")],
        [view], executor="threading", pool="scheduler-1")

Notifications are absolute, so the view only ever keeps the newest generation
of each node: a notification that arrives late (redelivered, reordered across
relays) is dropped, never applied over a newer one.
"""

import threading
from typing import Any

EVENT_TYPE = "capacity.update"

Node = tuple[str, str]


class CapacityView:
    """An oslo.messaging notification endpoint (``info``) plus the view it maintains."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[Node, dict[str, Any]] = {}
        self.dropped = 0

    def info(
        self, ctxt: Any, publisher_id: str, event_type: str, payload: dict[str, Any], metadata: Any
    ) -> None:
        if event_type == EVENT_TYPE:
            self.offer(payload)

    def offer(self, payload: dict[str, Any]) -> bool:
        """Keep ``payload`` if it is newer than what we have; True if kept."""
        key = (payload["host"], payload["node"])
        with self._lock:
            current = self._nodes.get(key)
            if current is not None and current["generation"] >= payload["generation"]:
                self.dropped += 1
                return False
            self._nodes[key] = payload
            return True

    def get(self, host: str, node: str) -> dict[str, Any] | None:
        with self._lock:
            return self._nodes.get((host, node))

    def free(self, resource: str) -> dict[Node, int | None]:
        """Free capacity of one resource class on every node (None: inventory unknown)."""
        with self._lock:
            return {key: payload["resources"][resource]["free"] for key, payload in self._nodes.items()}
