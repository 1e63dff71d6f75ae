"""Nova's legacy (unversioned) ``compute.instance.*`` payloads.

The payload is the flat dict of ``nova/notifications/base.py``
``info_from_instance``: sizes of the current flavor at top level, the flavor
*name* in ``instance_type``, no swap, and on ``resize.prep.*`` only the new
flavor's name (``new_instance_type``). Swap and the new flavor's sizes come
from the flavor catalogue (see :mod:`tracker.events.flavors`).
"""

from collections.abc import Mapping
from typing import Any

from tracker.events import fields
from tracker.events.envelope import Notification
from tracker.events.model import Flavor, InstanceEvent


def parse_flavor(data: Mapping[str, Any]) -> Flavor:
    """The current flavor's sizes. The payload has no swap: it reads as 0 until
    :func:`tracker.db.flavors.complete` fills it in from the catalogue."""
    return fields.flavor(data, name_key="instance_type", id_key="instance_flavor_id")


def is_boot_from_volume(data: Mapping[str, Any]) -> bool:
    """An instance without image: ``image_ref_url`` is empty or ends at ``/images/``."""
    url = data.get("image_ref_url") or ""
    return not isinstance(url, str) or url == "" or url.rstrip().endswith("/images/")


def parse_instance(notification: Notification, action: str) -> InstanceEvent:
    data = notification.payload
    return InstanceEvent(
        message_id=notification.message_id,
        action=action,
        timestamp=notification.timestamp,
        publisher_host=notification.publisher_host,
        instance_uuid=fields.required_text(data, "instance_id", fields.UUID_LENGTH),
        project_id=fields.optional_text(data, "tenant_id"),
        host=fields.optional_text(data, "host"),
        node=fields.optional_text(data, "node"),
        vm_state=fields.required_text(data, "state", fields.VM_STATE_LENGTH),
        task_state=fields.optional_text(data, "state_description", fields.TASK_STATE_LENGTH),
        flavor=parse_flavor(data),
        new_flavor_name=fields.optional_text(data, "new_instance_type"),
        boot_from_volume=is_boot_from_volume(data),
        legacy=True,
        request_id=notification.request_id,
    )
