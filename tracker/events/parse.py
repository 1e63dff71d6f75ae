"""From a decoded notification to an :class:`InstanceEvent`, whichever format."""

from tracker.events import catalogue, failures, legacy, versioned
from tracker.events.envelope import Notification
from tracker.events.model import InstanceEvent


def parse(notification: Notification) -> InstanceEvent | None:
    """The instance event, or None for notifications that do not touch usage.

    ``service.*``, ``metrics.update``, ``flavor.*`` and the like return
    None: the caller acknowledges and counts them. A failure (a versioned
    ``compute.exception`` with a request id, a legacy error of a function in
    ``catalogue.LEGACY_MOVE_FAILURES``) is an event of action ``FAILURE``.
    """
    event_type = notification.event_type
    action = catalogue.versioned_action(event_type)
    if action is not None:
        return versioned.parse_instance(notification, action)
    action = catalogue.legacy_action(event_type)
    if action is not None:
        return legacy.parse_instance(notification, action)
    if event_type == catalogue.VERSIONED_EXCEPTION:
        return failures.parse_versioned(notification)
    if notification.priority == "ERROR" and event_type in catalogue.LEGACY_MOVE_FAILURES:
        return failures.parse_legacy(notification)
    return None
