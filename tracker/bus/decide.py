"""Decide what a raw message is: an event to apply, one to ignore, or poison.

Pure: the worker and ``tracker-manage replay`` both go through here.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

from tracker import escape
from tracker.errors import PoisonMessage
from tracker.events import envelope, hosts, parse
from tracker.events.hosts import HostEvent
from tracker.events.model import InstanceEvent

APPLY = "apply"
HOST = "host"
IGNORE = "ignore"
POISON = "poison"


@dataclasses.dataclass(frozen=True)
class Decision:
    kind: str
    event: InstanceEvent | None = None
    reason: str = ""
    event_type: str | None = None
    # a service or aggregate change: applied apart from instance accounting
    host_event: HostEvent | None = None

    @property
    def lane_key(self) -> str:
        """The host whose events must not run concurrently: payload host, else publisher."""
        event = self.event
        if event is None:
            return ""
        return event.host or event.publisher_host or event.instance_uuid


def decide(body: bytes | str | Mapping[str, Any], max_bytes: int) -> Decision:
    try:
        notification = envelope.decode(body, max_bytes)
        event = parse.parse(notification)
        host_event = hosts.parse(notification) if event is None else None
    except PoisonMessage as error:
        # printable and bounded whatever the message held: it is logged and stored
        return Decision(POISON, reason=escape.text(f"{type(error).__name__}: {error}", 1000))
    if host_event is not None:
        return Decision(HOST, host_event=host_event, event_type=notification.event_type)
    if event is None:
        reason = (
            "a legacy aggregate notification (aggregates are read from versioned ones)"
            if hosts.is_legacy_aggregate(notification)
            else "not an instance event"
        )
        return Decision(IGNORE, reason=reason, event_type=notification.event_type)
    return Decision(APPLY, event=event, event_type=notification.event_type)
