"""A node row seen as a scheduler sees it: the capacity notification payload
(doc/capacity-notification.md; its JSON Schema is checked by the tests)."""

import datetime
from typing import Any

from tracker.accounting import alerts
from tracker.accounting.capacity import Inventory, ResourceView, views
from tracker.accounting.usage import Usage
from tracker.db.hosts import HostFacts
from tracker.db.nodes import NodeRecord

EVENT_TYPE = "capacity.update"
OVERCOMMIT_EVENT_TYPE = "capacity.overcommit"
# major.minor as Nova's versioned notifications: a compatible change (a new
# field) bumps the minor, anything a subscriber could trip on the major
SCHEMA_VERSION = "1.0"


def now_text() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def node_usage(node: NodeRecord) -> Usage:
    return Usage(node.vcpus_used, node.memory_mb_used, node.local_gb_used)


def resources(node: NodeRecord) -> dict[str, ResourceView]:
    return views(
        Inventory(node.vcpus, node.reserved_vcpus, node.cpu_allocation_ratio),
        Inventory(node.memory_mb, node.reserved_memory_mb, node.ram_allocation_ratio),
        Inventory(node.local_gb, node.reserved_local_gb, node.disk_allocation_ratio),
        node_usage(node),
    )


def _identity(node: NodeRecord, timestamp: str) -> dict[str, Any]:
    return {
        "version": SCHEMA_VERSION,
        "uuid": node.uuid,
        "host": node.host,
        "nodename": node.hypervisor_hostname,
        "node": node.hypervisor_hostname,  # the name before 1.0, kept for older subscribers
        "generation": node.generation,
        "timestamp": timestamp,
    }


def payload(node: NodeRecord, facts: HostFacts, timestamp: str) -> dict[str, Any]:
    """Absolute values only, so a subscriber can drop anything older than what it has."""
    return {
        **_identity(node, timestamp),
        "running_vms": node.running_vms,
        "resources": {name: vars(view) for name, view in resources(node).items()},
        "disabled": facts.disabled,
        "disabled_reason": facts.disabled_reason,
        "forced_down": facts.forced_down,
        "availability_zone": facts.availability_zone,
        "aggregates": [{"uuid": uuid, "name": name} for uuid, name in facts.aggregates],
    }


def overcommit_alert(before: NodeRecord | None, node: NodeRecord, timestamp: str) -> dict[str, Any] | None:
    """The ``capacity.overcommit`` payload if this change took ``node`` over a capacity."""
    over = alerts.newly_overcommitted(resources(before) if before else None, resources(node))
    if not over:
        return None
    return {
        **_identity(node, timestamp),
        "overcommitted": {
            name: {"used": view.used, "capacity": view.capacity} for name, view in over.items()
        },
    }
