"""Nova's versioned ``InstancePayload`` family and ``FlavorPayload``.

Payloads are serialized oslo versioned objects
(``nova_object.name/namespace/version/data``). We read ``nova_object.data``
and ignore the name, as Nova's contract asks: minor versions only add fields.
"""

from collections.abc import Mapping
from typing import Any

from tracker.errors import InvalidPayload
from tracker.events import fields
from tracker.events.envelope import Notification
from tracker.events.model import Flavor, InstanceEvent

DATA_KEY = "nova_object.data"


def object_data(primitive: Mapping[str, Any] | None, what: str) -> Mapping[str, Any]:
    if primitive is None:
        raise InvalidPayload(f"payload lacks {what}")
    data = primitive.get(DATA_KEY)
    if not isinstance(data, Mapping):
        raise InvalidPayload(f"{what} is not a Nova versioned object")
    return data


def parse_flavor(primitive: Mapping[str, Any] | None, what: str = "flavor") -> Flavor:
    return fields.flavor(object_data(primitive, what))


def is_boot_from_volume(data: Mapping[str, Any]) -> bool:
    """Nova's ``is_volume_backed_instance``: the root BDM, else an empty image."""
    devices = data.get("block_devices")
    if isinstance(devices, list) and devices:
        root = [d for d in devices if isinstance(d, Mapping) and _is_root(d)]
        if root:
            return bool(root[0].get("volume_id"))
    return not data.get("image_uuid")


def parse_instance(notification: Notification, action: str) -> InstanceEvent:
    data = object_data(notification.payload, "payload")
    new_flavor_primitive = fields.mapping(data, "new_flavor")
    return InstanceEvent(
        message_id=notification.message_id,
        action=action,
        timestamp=notification.timestamp,
        publisher_host=notification.publisher_host,
        instance_uuid=fields.required_text(data, "uuid", fields.UUID_LENGTH),
        project_id=fields.optional_text(data, "tenant_id"),
        host=fields.optional_text(data, "host"),
        node=fields.optional_text(data, "node"),
        vm_state=fields.required_text(data, "state", fields.VM_STATE_LENGTH),
        task_state=fields.optional_text(data, "task_state", fields.TASK_STATE_LENGTH),
        # Every InstancePayload embeds the instance's flavor: without it the
        # message is not what Nova sends.
        flavor=parse_flavor(fields.mapping(data, "flavor")),
        new_flavor=(parse_flavor(new_flavor_primitive, "new_flavor") if new_flavor_primitive else None),
        boot_from_volume=is_boot_from_volume(data),
        request_id=_request_id(data),
    )


def _request_id(data: Mapping[str, Any]) -> str | None:
    """Nova's request id, for log lines only: a malformed one is dropped, never a
    reason to refuse an event that counts."""
    value = data.get("request_id")
    if isinstance(value, str) and value.isprintable() and len(value) <= fields.MAX_NAME:
        return value
    return None


def _is_root(device: Mapping[str, Any]) -> bool:
    return device.get("boot_index") in (0, "0")
