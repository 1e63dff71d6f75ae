"""Notification payloads: versioned oslo primitives and legacy flat dicts.

Versioned payloads are what ``NotificationBase.emit`` sends:
``payload.obj_to_primitive()`` of an InstancePayload subclass, with nested
objects (FlavorPayload, ExceptionPayload, ...) fully inlined in the same
four-key form and no ``nova_object.changes`` (changes are reset before emit).
Legacy payloads follow ``nova.notifications.base.info_from_instance``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloudsim.context import Context
from cloudsim.flavors import Flavor
from cloudsim.nova import Instance

Payload = dict[str, Any]

# (object name, version) of every versioned instance payload class we emit.
PAYLOAD_CLASSES: dict[str, tuple[str, str]] = {
    "action": ("InstanceActionPayload", "1.9"),
    "create": ("InstanceCreatePayload", "1.13"),
    "resize_prep": ("InstanceActionResizePrepPayload", "1.4"),
    "rebuild": ("InstanceActionRebuildPayload", "1.10"),
    "snapshot": ("InstanceActionSnapshotPayload", "1.10"),
    "rescue": ("InstanceActionRescuePayload", "1.4"),
    "exists": ("InstanceExistsPayload", "2.1"),
    "update": ("InstanceUpdatePayload", "2.1"),
}
IMAGE_URL = "http://glance.example.org:9292/images/"


@dataclass(frozen=True)
class Fault:
    """An exception carried by an error-phase notification."""

    exception: str
    message: str
    function_name: str
    module_name: str = "nova.compute.manager"


@dataclass(frozen=True)
class Extras:
    """Per-event additions on top of the instance snapshot."""

    fault: Fault | None = None
    new_flavor: Flavor | None = None
    audit_period: tuple[datetime, datetime] | None = None
    state_update: tuple[str | None, str | None, str | None, str | None] | None = None
    image_id: str | None = None  # snapshot_image_id / rescue_image_ref
    with_bdms: bool = False  # create.* pass the bdms explicitly
    legacy: dict[str, Any] | None = None  # legacy-only extra_usage_info


def ovo(name: str, version: str, data: Payload) -> Payload:
    """Serialise like ``obj_to_primitive`` (without the changes list)."""
    return {
        "nova_object.name": name,
        "nova_object.namespace": "nova",
        "nova_object.version": version,
        "nova_object.data": data,
    }


def isotime(value: datetime | None) -> str | None:
    """ovo DateTimeField primitive: second resolution, ``Z`` suffix."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def strtime(value: datetime | None) -> str:
    """Legacy ``null_safe_isotime``: nova.utils.strtime or empty string."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else ""


def flavor_payload(flavor: Flavor) -> Payload:
    """FlavorPayload 1.4 of an embedded flavor (``projects`` not loaded)."""
    return ovo(
        "FlavorPayload",
        "1.4",
        {
            "flavorid": flavor.flavorid,
            "name": flavor.name,
            "memory_mb": flavor.memory_mb,
            "vcpus": flavor.vcpus,
            "root_gb": flavor.root_gb,
            "ephemeral_gb": flavor.ephemeral_gb,
            "swap": flavor.swap,
            "rxtx_factor": flavor.rxtx_factor,
            "vcpu_weight": flavor.vcpu_weight,
            "disabled": flavor.disabled,
            "is_public": flavor.is_public,
            "extra_specs": dict(flavor.extra_specs),
            "projects": None,
            "description": flavor.description,
        },
    )


def fault_payload(fault: Fault) -> Payload:
    """ExceptionPayload 1.1."""
    return ovo(
        "ExceptionPayload",
        "1.1",
        {
            "exception": fault.exception,
            "exception_message": fault.message,
            "function_name": fault.function_name,
            "module_name": fault.module_name,
            "traceback": f'Traceback (most recent call last):\n  File "nova/compute/manager.py",'
            f" line 2700, in {fault.function_name}\nnova.exception.{fault.exception}:"
            f" {fault.message}\n",
        },
    )


def ip_payloads(inst: Instance) -> list[Payload]:
    """IpPayload list from the network info cache (empty before networking)."""
    if not inst.ip_address or not inst.port_id or not inst.mac:
        return []
    return [
        ovo(
            "IpPayload",
            "1.0",
            {
                "label": "private",
                "mac": inst.mac,
                "meta": {},
                "port_uuid": inst.port_id,
                "version": 4,
                "address": inst.ip_address,
                "device_name": f"tap{inst.port_id[:11]}",
            },
        )
    ]


def bdm_payloads(inst: Instance) -> list[Payload]:
    """BlockDevicePayload list, only sent when the caller passes bdms."""
    if not inst.volume_id:
        return []
    return [
        ovo(
            "BlockDevicePayload",
            "1.0",
            {
                "device_name": "/dev/vda",
                "boot_index": 0,
                "delete_on_termination": True,
                "volume_id": inst.volume_id,
                "tag": None,
            },
        )
    ]


def instance_data(inst: Instance, ctx: Context, extras: Extras) -> Payload:
    """``InstancePayload`` fields, taken from the instance at emit time."""
    return {
        "uuid": inst.uuid,
        "user_id": inst.user_id,
        "tenant_id": inst.project_id,
        "reservation_id": inst.reservation_id,
        "display_name": inst.display_name,
        "display_description": inst.display_name,
        "host_name": inst.display_name,
        "host": inst.host,
        "node": inst.node,
        "os_type": None,
        "architecture": None if inst.volume_backed else "x86_64",
        "availability_zone": inst.availability_zone,
        "flavor": flavor_payload(inst.flavor),
        "image_uuid": inst.image_ref,
        "key_name": inst.key_name,
        "kernel_id": "",
        "ramdisk_id": "",
        "created_at": isotime(inst.created_at),
        "launched_at": isotime(inst.launched_at),
        "terminated_at": isotime(inst.terminated_at),
        "deleted_at": isotime(inst.deleted_at),
        "updated_at": isotime(inst.updated_at),
        "state": inst.vm_state,
        "power_state": inst.power_state,
        "task_state": inst.task_state,
        "progress": 0,
        "ip_addresses": ip_payloads(inst),
        "block_devices": bdm_payloads(inst) if extras.with_bdms else None,
        "metadata": {},
        "locked": inst.locked,
        "auto_disk_config": "MANUAL",
        "request_id": ctx.request_id if ctx.project_id and ctx.user_id else None,
        "action_initiator_user": ctx.user_id,
        "action_initiator_project": ctx.project_id,
        "locked_reason": inst.locked_reason,
        "shares": [],
    }


def audit_period_payload(period: tuple[datetime, datetime]) -> Payload:
    """AuditPeriodPayload 1.0."""
    return ovo(
        "AuditPeriodPayload",
        "1.0",
        {"audit_period_beginning": isotime(period[0]), "audit_period_ending": isotime(period[1])},
    )


def _subclass_fields(kind: str, inst: Instance, extras: Extras) -> Payload:
    """The fields each InstancePayload subclass adds."""
    fault = fault_payload(extras.fault) if extras.fault else None
    if kind in ("exists", "update"):
        assert extras.audit_period is not None
        data: Payload = {"audit_period": audit_period_payload(extras.audit_period)}
        if kind == "update":
            assert extras.state_update is not None
            old_state, state, old_task, new_task = extras.state_update
            data["state_update"] = ovo(
                "InstanceStateUpdatePayload",
                "1.0",
                {
                    "old_state": old_state,
                    "state": state,
                    "old_task_state": old_task,
                    "new_task_state": new_task,
                },
            )
            data.update(old_display_name=None, tags=list(inst.tags))
        return data
    data = {"fault": fault}
    if kind == "create":
        data.update(
            keypairs=[],
            tags=list(inst.tags),
            trusted_image_certificates=None,
            instance_name=inst.instance_name,
        )
    elif kind == "resize_prep":
        data["new_flavor"] = flavor_payload(extras.new_flavor) if extras.new_flavor else None
    elif kind == "rebuild":
        data["trusted_image_certificates"] = None
    elif kind == "snapshot":
        data["snapshot_image_id"] = extras.image_id
    elif kind == "rescue":
        data["rescue_image_ref"] = extras.image_id
    return data


def versioned_payload(kind: str, inst: Instance, ctx: Context, extras: Extras) -> Payload:
    """Full versioned payload primitive for one event."""
    name, version = PAYLOAD_CLASSES[kind]
    data = instance_data(inst, ctx, extras)
    data.update(_subclass_fields(kind, inst, extras))
    return ovo(name, version, data)


def legacy_payload(inst: Instance, extras: Extras) -> Payload:
    """``info_from_instance`` (+ fault and extra_usage_info); no swap field."""
    flavor = inst.flavor
    info: Payload = {
        "tenant_id": inst.project_id,
        "user_id": inst.user_id,
        "instance_id": inst.uuid,
        "display_name": inst.display_name,
        "reservation_id": inst.reservation_id,
        "hostname": inst.display_name,
        "instance_type": flavor.name,
        "instance_type_id": flavor.id,
        "instance_flavor_id": flavor.flavorid,
        "architecture": None if inst.volume_backed else "x86_64",
        "memory_mb": flavor.memory_mb,
        "disk_gb": flavor.root_gb + flavor.ephemeral_gb,
        "vcpus": flavor.vcpus,
        "root_gb": flavor.root_gb,
        "ephemeral_gb": flavor.ephemeral_gb,
        "host": inst.host,
        "node": inst.node,
        "availability_zone": inst.availability_zone,
        "cell_name": "",
        "created_at": str(inst.created_at) + "+00:00",
        "terminated_at": strtime(inst.terminated_at),
        "deleted_at": strtime(inst.deleted_at),
        "launched_at": strtime(inst.launched_at),
        "image_ref_url": IMAGE_URL + inst.image_ref,
        "os_type": None,
        "kernel_id": "",
        "ramdisk_id": "",
        "state": inst.vm_state,
        "state_description": inst.task_state or "",
        "progress": "",
        "access_ip_v4": None,
        "access_ip_v6": None,
        "image_meta": {}
        if inst.volume_backed
        else {"base_image_ref": inst.image_ref, "disk_format": "qcow2", "container_format": "bare"},
        "metadata": {},
    }
    info.update(_legacy_extras(extras))
    return info


def _legacy_extras(extras: Extras) -> Payload:
    """Fault dict, audit period and state fields of the legacy payload."""
    out: Payload = dict(extras.legacy or {})
    if extras.fault:
        out.update(exception={"kwargs": {"code": 500}, "code": 500}, message=extras.fault.message, code=500)
    if extras.audit_period:
        begin, end = extras.audit_period
        out.setdefault("audit_period_beginning", str(begin))
        out.setdefault("audit_period_ending", str(end))
    if extras.state_update:
        old_state, state, old_task, new_task = extras.state_update
        out.update(old_state=old_state, state=state, old_task_state=old_task, new_task_state=new_task)
    return out


def request_spec_payload(inst: Instance) -> Payload:
    """RequestSpecPayload 1.1 (trimmed to fields a consumer could read)."""
    return ovo(
        "RequestSpecPayload",
        "1.1",
        {
            "availability_zone": None,
            "flavor": flavor_payload(inst.flavor),
            "ignore_hosts": None,
            "image": None,
            "instance_uuid": inst.uuid,
            "num_instances": 1,
            "numa_topology": None,
            "pci_requests": None,
            "project_id": inst.project_id,
            "scheduler_hints": {},
            "security_groups": ["default"],
            "force_hosts": None,
            "force_nodes": None,
            "instance_group": None,
            "requested_destination": None,
            "retry": None,
            "user_id": inst.user_id,
        },
    )


def compute_task_payload(inst: Instance, state: str, fault: Fault) -> Payload:
    """ComputeTaskPayload 1.0 of ``compute_task.<method>.error``."""
    return ovo(
        "ComputeTaskPayload",
        "1.0",
        {
            "instance_uuid": inst.uuid,
            "reason": fault_payload(fault),
            "request_spec": request_spec_payload(inst),
            "state": state,
        },
    )


def legacy_compute_task_payload(inst: Instance, state: str, method: str, fault: Fault) -> Payload:
    """Legacy ``compute_task.<method>`` payload of set_vm_state_and_notify."""
    return {
        "request_spec": {"instance_type": {"name": inst.flavor.name}},
        "instance_properties": {},
        "instance_id": inst.uuid,
        "state": state,
        "method": method,
        "reason": fault.message,
    }
