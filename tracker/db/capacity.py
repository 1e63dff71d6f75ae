"""A node row seen as a scheduler sees it: the capacity notification payload."""

from typing import Any

from tracker.accounting.capacity import Inventory, views
from tracker.accounting.usage import Usage
from tracker.db.nodes import NodeRecord

EVENT_TYPE = "capacity.update"


def node_usage(node: NodeRecord) -> Usage:
    return Usage(node.vcpus_used, node.memory_mb_used, node.local_gb_used)


def payload(node: NodeRecord) -> dict[str, Any]:
    """Absolute values only, so a subscriber can drop anything older than what it has."""
    resources = views(
        Inventory(node.vcpus, node.reserved_vcpus, node.cpu_allocation_ratio),
        Inventory(node.memory_mb, node.reserved_memory_mb, node.ram_allocation_ratio),
        Inventory(node.local_gb, node.reserved_local_gb, node.disk_allocation_ratio),
        node_usage(node),
    )
    return {
        "host": node.host,
        "node": node.hypervisor_hostname,
        "generation": node.generation,
        "running_vms": node.running_vms,
        "resources": {name: vars(view) for name, view in resources.items()},
    }
