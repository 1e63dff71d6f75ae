"""From a decoded notification to an :class:`InstanceEvent`, whichever format."""

from tracker.events import catalogue, legacy, versioned
from tracker.events.envelope import Notification
from tracker.events.model import InstanceEvent


def parse(notification: Notification) -> InstanceEvent | None:
    """The instance event, or None for notifications that do not touch usage.

    ``service.*``, ``compute.exception``, ``metrics.update``, ``flavor.*``
    and the like return None: the caller acknowledges and counts them.
    """
    action = catalogue.versioned_action(notification.event_type)
    if action is not None:
        return versioned.parse_instance(notification, action)
    action = catalogue.legacy_action(notification.event_type)
    if action is not None:
        return legacy.parse_instance(notification, action)
    return None
