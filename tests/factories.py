"""Nova-shaped payloads and envelopes for tests, modelled on Nova's notification samples."""

import datetime
import json
import uuid
from typing import Any

from tracker.db import capacity
from tracker.db.hosts import NO_FACTS
from tracker.db.nodes import NodeRecord
from tracker.events.model import Flavor, InstanceEvent

T0 = datetime.datetime(2026, 8, 21, 21, 0, 0, 1)


def flavor_payload(
    vcpus: int = 2,
    memory_mb: int = 2048,
    root_gb: int = 20,
    ephemeral_gb: int = 0,
    swap: int = 0,
    name: str = "m1.small",
) -> dict[str, Any]:
    return {
        "nova_object.name": "FlavorPayload",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.4",
        "nova_object.data": {
            "flavorid": name,
            "name": name,
            "memory_mb": memory_mb,
            "vcpus": vcpus,
            "root_gb": root_gb,
            "ephemeral_gb": ephemeral_gb,
            "swap": swap,
            "rxtx_factor": 1.0,
            "vcpu_weight": 0,
            "disabled": False,
            "is_public": True,
            "extra_specs": {},
            "projects": None,
            "description": None,
        },
    }


def instance_payload(
    uuid_: str,
    host: str | None = "cmp1",
    node: str | None = "cmp1.example.org",
    state: str = "active",
    task_state: str | None = None,
    flavor: dict[str, Any] | None = None,
    new_flavor: dict[str, Any] | None = None,
    image_uuid: str = "a2459075-d96c-40d5-893e-577ff92e721c",
    project: str = "6f70656e737461636b20342065766572",
    name: str = "InstanceActionPayload",
    request_id: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "request_id": request_id,
        "uuid": uuid_,
        "tenant_id": project,
        "user_id": "fake",
        "host": host,
        "node": node,
        "state": state,
        "task_state": task_state,
        "power_state": "running",
        "flavor": flavor or flavor_payload(),
        "image_uuid": image_uuid,
        "display_name": "some-server",
        "availability_zone": "nova",
        "block_devices": [],
    }
    if new_flavor is not None:
        data["new_flavor"] = new_flavor
    return {
        "nova_object.name": name,
        "nova_object.namespace": "nova",
        "nova_object.version": "1.9",
        "nova_object.data": data,
    }


def message(
    event_type: str,
    payload: dict[str, Any],
    publisher: str = "nova-compute:cmp1",
    timestamp: datetime.datetime = T0,
    priority: str = "INFO",
    request_id: str = "req-5b6c791d-5709-4f36-8fbe-c3e02869e35d",
) -> dict[str, Any]:
    """The inner oslo message dict, with a request context as oslo packs it."""
    return {
        "message_id": str(uuid.uuid4()),
        "publisher_id": publisher,
        "event_type": event_type,
        "priority": priority,
        "payload": payload,
        "timestamp": str(timestamp),
        "_unique_id": uuid.uuid4().hex,
        "_context_auth_token": "gAAAAABsecret-token",
        "_context_user_id": "fake",
        "_context_project_id": "6f70656e737461636b20342065766572",
        "_context_request_id": request_id,
        "_context_roles": ["admin"],
    }


def envelope(inner: dict[str, Any]) -> dict[str, str]:
    return {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}


def flavor(
    vcpus: int = 2, memory_mb: int = 2048, root_gb: int = 20, ephemeral_gb: int = 0, swap: int = 0
) -> Flavor:
    return Flavor(vcpus, memory_mb, root_gb, ephemeral_gb, swap)


def event(
    action: str,
    seconds: float,
    host: str | None = "cmp1",
    node: str | None = "cmp1.example.org",
    publisher: str | None = None,
    state: str = "active",
    task_state: str | None = None,
    flavor_: Flavor | None = None,
    new_flavor: Flavor | None = None,
    instance: str = "inst-1",
    project: str = "proj-1",
    bfv: bool = False,
) -> InstanceEvent:
    """An already-parsed event, for the pure accounting tests."""
    return InstanceEvent(
        message_id=str(uuid.uuid4()),
        action=action,
        timestamp=T0 + datetime.timedelta(seconds=seconds),
        publisher_host=publisher or host,
        instance_uuid=instance,
        project_id=project,
        host=host,
        node=node,
        vm_state=state,
        task_state=task_state,
        flavor=flavor_ or flavor(),
        new_flavor=new_flavor,
        boot_from_volume=bfv,
    )


def service_payload(
    host: str = "cmp1",
    disabled: bool = False,
    forced_down: bool = False,
    reason: str | None = None,
    zone: str | None = None,
    binary: str = "nova-compute",
) -> dict[str, Any]:
    """ServiceStatusPayload 1.1, as in Nova's service-update.json sample (whose
    ``availability_zone`` is null: Nova does not fill it in notifications)."""
    return {
        "nova_object.name": "ServiceStatusPayload",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.1",
        "nova_object.data": {
            "host": host,
            "binary": binary,
            "topic": "compute",
            "report_count": 1,
            "disabled": disabled,
            "disabled_reason": reason,
            "forced_down": forced_down,
            "availability_zone": zone,
            "last_seen_up": None,
            "version": 66,
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, host)),
        },
    }


def aggregate_payload(
    uuid_: str, name: str, hosts: list[str] | None, zone: str | None = None
) -> dict[str, Any]:
    """AggregatePayload 1.0; the zone is the ``availability_zone`` metadata key."""
    return {
        "nova_object.name": "AggregatePayload",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.0",
        "nova_object.data": {
            "id": 1,
            "uuid": uuid_,
            "name": name,
            "hosts": hosts,
            "metadata": {"availability_zone": zone} if zone else {},
        },
    }


def capacity_payload(
    host: str = "cmp1", nodename: str | None = None, generation: int = 1, facts: Any = None, **fields: Any
) -> dict[str, Any]:
    """A ``capacity.update`` payload as the tracker builds it, of a registered node
    (16 vCPUs, 32 GiB, 400 GiB, Nova's default reserve and ratios) unless ``fields`` say else."""
    record = {
        "id": 1,
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{host}/{nodename}")),
        "host": host,
        "hypervisor_hostname": nodename or host,
        "placeholder": False,
        "vcpus": 16,
        "memory_mb": 32768,
        "local_gb": 400,
        "reserved_vcpus": 0,
        "reserved_memory_mb": 512,
        "reserved_local_gb": 0,
        "cpu_allocation_ratio": 4.0,
        "ram_allocation_ratio": 1.0,
        "disk_allocation_ratio": 1.0,
        "vcpus_used": 0,
        "memory_mb_used": 0,
        "local_gb_used": 0,
        "running_vms": 0,
        "generation": generation,
        **fields,
    }
    return capacity.payload(NodeRecord(**record), facts or NO_FACTS, capacity.now_text())
