"""Nova's ``service.*`` and ``aggregate.*`` versioned notifications: what a scheduler
must know of a host besides its usage (disabled, forced down, zone, aggregates).

They are not instance events: the worker applies them apart from instance
accounting (see ``tracker.bus.host_events``). Only the versioned format is
read; each ``.end`` carries the whole aggregate, so it is kept as a snapshot.
"""

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from tracker.errors import InvalidPayload
from tracker.events import fields
from tracker.events.envelope import Notification
from tracker.events.versioned import DATA_KEY, object_data

COMPUTE_BINARY = "nova-compute"
_SERVICE_EVENTS = ("service.create", "service.update", "service.delete")
_SERVICE_DELETE = "service.delete"
# what a deleted service's nodes say: disabled for good, until Nova creates the service again
DELETED_REASON = "nova-compute service deleted"
_AGGREGATE_PREFIX = "aggregate."
_AGGREGATE_DELETE = "aggregate.delete.end"
# Nova's AggregatePayload metadata key that makes an aggregate a zone
AZ_METADATA_KEY = "availability_zone"


@dataclasses.dataclass(frozen=True)
class ServiceStatus:
    """A nova-compute service's state (ServiceStatusPayload), as of ``timestamp``."""

    host: str
    disabled: bool
    disabled_reason: str | None
    forced_down: bool
    availability_zone: str | None
    timestamp: datetime.datetime


@dataclasses.dataclass(frozen=True)
class AggregateState:
    """An aggregate (AggregatePayload) after an ``aggregate.*.end``; ``hosts`` None: not told."""

    uuid: str
    name: str
    availability_zone: str | None
    hosts: tuple[str, ...] | None
    deleted: bool
    timestamp: datetime.datetime


HostEvent = ServiceStatus | AggregateState


def is_host_event(event_type: str) -> bool:
    """A notification this module reads (``.start`` phases and other services are not)."""
    if event_type in _SERVICE_EVENTS:
        return True
    return event_type.startswith(_AGGREGATE_PREFIX) and event_type.endswith(".end")


def is_legacy_aggregate(notification: Notification) -> bool:
    """An unversioned ``aggregate.*`` notification (``notification_format =
    unversioned`` or ``both``): a flat payload (``aggregate_id``, ``host_name``…),
    some with the same event type as the versioned ones (``aggregate.create.end``).
    It names aggregates by id and hosts one at a time, so it is not read: deployments
    that need zones and aggregates enable the versioned notifications."""
    payload = notification.payload
    return notification.event_type.startswith(_AGGREGATE_PREFIX) and not (
        isinstance(payload, Mapping) and DATA_KEY in payload
    )


def parse(notification: Notification) -> HostEvent | None:
    """The host event, or None when the notification says nothing a scheduler needs
    (another binary's service, an aggregate's ``.start`` phase, a legacy aggregate
    notification)."""
    event_type = notification.event_type
    if not is_host_event(event_type) or is_legacy_aggregate(notification):
        return None
    data = object_data(notification.payload, "payload")
    if event_type in _SERVICE_EVENTS:
        return _service(data, notification.timestamp, deleted=event_type == _SERVICE_DELETE)
    return _aggregate(data, notification.timestamp, deleted=event_type == _AGGREGATE_DELETE)


def _service(data: Mapping[str, Any], timestamp: datetime.datetime, deleted: bool) -> ServiceStatus | None:
    if data.get("binary") != COMPUTE_BINARY:
        return None
    return ServiceStatus(
        host=fields.required_text(data, "host"),
        disabled=deleted or _flag(data, "disabled"),
        disabled_reason=DELETED_REASON if deleted else fields.optional_text(data, "disabled_reason"),
        forced_down=_flag(data, "forced_down"),
        availability_zone=fields.optional_text(data, "availability_zone"),
        timestamp=timestamp,
    )


def _aggregate(data: Mapping[str, Any], timestamp: datetime.datetime, deleted: bool) -> AggregateState:
    metadata = fields.mapping(data, "metadata") or {}
    hosts = data.get("hosts")
    if hosts is not None and not isinstance(hosts, list):
        raise InvalidPayload("hosts is not a list")
    return AggregateState(
        uuid=fields.required_text(data, "uuid", fields.UUID_LENGTH),
        name=fields.required_text(data, "name"),
        availability_zone=fields.optional_text(metadata, AZ_METADATA_KEY),
        hosts=None if hosts is None else tuple(sorted({fields.checked_text(h, "hosts") for h in hosts})),
        deleted=deleted,
        timestamp=timestamp,
    )


def _flag(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise InvalidPayload(f"{key} is {type(value).__name__}, not a boolean")
    return value
