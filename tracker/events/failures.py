"""Nova's ``wrap_exception`` notifications: a compute manager function raised.

Versioned, ``compute.exception`` (ExceptionPayload): it names the innermost
frame, not the manager's function, and no instance; only the envelope's
request id ties it to the action it broke (the database routes it, see
:mod:`tracker.db.requests`). Legacy, an ERROR notification named after the
manager's function, whose payload ``args`` holds the call's arguments, the
instance among them.
"""

from tracker import escape
from tracker.events import fields, versioned
from tracker.events.envelope import Notification
from tracker.events.model import FAILURE, UNROUTED, Failure, InstanceEvent


def parse_versioned(notification: Notification) -> InstanceEvent | None:
    """Without a request id nothing ties it to an action: it is ignored."""
    if notification.request_id is None:
        return None
    data = versioned.object_data(notification.payload, "payload")
    failure = Failure(exception=fields.optional_text(data, "exception"))
    return _event(notification, UNROUTED, failure, legacy=False)


def parse_legacy(notification: Notification) -> InstanceEvent | None:
    """None if its ``args`` name no instance."""
    args = fields.mapping(notification.payload, "args")
    instance = fields.mapping(args, "instance") if args is not None else None
    if instance is None:
        return None
    data = fields.mapping(instance, versioned.DATA_KEY) or instance
    exception = notification.payload.get("exception")
    failure = Failure(
        # str(exception), as Nova's serializer falls back to: only a label
        exception=escape.text(exception, fields.MAX_NAME) if isinstance(exception, str) else None,
        function=notification.event_type,
    )
    return _event(notification, fields.required_text(data, "uuid", fields.UUID_LENGTH), failure, legacy=True)


def _event(notification: Notification, instance_uuid: str, failure: Failure, legacy: bool) -> InstanceEvent:
    return InstanceEvent(
        message_id=notification.message_id,
        action=FAILURE,
        timestamp=notification.timestamp,
        publisher_host=notification.publisher_host,
        instance_uuid=instance_uuid,
        project_id=None,
        host=None,
        node=None,
        vm_state=None,
        task_state=None,
        flavor=None,
        legacy=legacy,
        request_id=notification.request_id,
        failure=failure,
    )
