"""Live publishing through a stock oslo.messaging Notifier (driver messagingv2).

Each message is re-sent with its own publisher_id, event_type, priority and
payload on topic ``versioned_notifications`` or ``notifications`` of the
control exchange (``nova``).  The Notifier stamps its own message_id,
timestamp and _unique_id, which is fine for a live demo feed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import oslo_messaging
from oslo_config import cfg
from oslo_context import context as oslo_context

from cloudsim.envelope import Message, inner


class SimContext(oslo_context.RequestContext):
    """A RequestContext whose ``to_dict`` is the simulated nova context.

    Notifier drops plain-dict contexts and sends ``redacted_copy().to_dict()``
    of real ones, so we subclass to keep nova's keys; the redaction of the
    auth token is kept, as the stock Notifier does.
    """

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(
            user_id=values.get("user_id"),
            project_id=values.get("project_id"),
            request_id=values.get("request_id"),
            is_admin=values.get("is_admin"),
            roles=values.get("roles") or [],
            auth_token=values.get("auth_token"),
            overwrite=False,
        )
        self.values = dict(values)

    def redacted_copy(self, **kwargs: Any) -> SimContext:
        """Same keys, auth_token removed (oslo.messaging's sanitisation)."""
        return SimContext({**self.values, "auth_token": None})

    def to_dict(self) -> dict[str, Any]:
        """The nova RequestContext.to_dict() keys."""
        return dict(self.values)


def context_of(notification: dict[str, Any]) -> SimContext:
    """Rebuild the request context from the packed ``_context_*`` keys."""
    prefix = "_context_"
    return SimContext({k[len(prefix) :]: v for k, v in notification.items() if k.startswith(prefix)})


def make_transport(transport_url: str, exchange: str) -> Any:
    """A notification transport whose control exchange is ``exchange``."""
    oslo_messaging.set_transport_defaults(control_exchange=exchange)
    conf = cfg.ConfigOpts()
    conf([], project="cloudsim", default_config_files=[], default_config_dirs=[])
    return oslo_messaging.get_notification_transport(conf, url=transport_url)


def publish(
    messages: Sequence[Message],
    transport_url: str,
    exchange: str = "nova",
    rate: float | None = None,
    progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> None:
    """Send every message in order, at most ``rate`` per second if given."""
    transport = make_transport(transport_url, exchange)
    notifiers: dict[tuple[str, str], oslo_messaging.Notifier] = {}
    try:
        for number, message in enumerate(messages):
            note = inner(message)
            topic = message["routing_key"].rsplit(".", 1)[0]
            key = (topic, note["publisher_id"])
            if key not in notifiers:
                notifiers[key] = oslo_messaging.Notifier(
                    transport, publisher_id=note["publisher_id"], driver="messagingv2", topics=[topic]
                )
            send = getattr(notifiers[key], note["priority"].lower())
            send(context_of(note), note["event_type"], note["payload"])
            if progress:
                progress(number, note)
            if rate:
                time.sleep(1.0 / rate)
    finally:
        transport.cleanup()
