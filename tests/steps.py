"""Nova lifecycle steps, rendered as real notifications in either format.

A step says who publishes, what the payload says (host, node, state, task,
flavor) and what every node must hold afterwards. The same step becomes a
versioned ``instance.*`` or a legacy ``compute.instance.*`` message, so one
table of scenarios checks both formats through the whole decode → parse →
account → persist path.
"""

import dataclasses
import datetime
from typing import Any

from cloudsim.envelope import LEGACY_ACTIONS

from tests import factories
from tracker.events.model import Flavor

FAILURE = "failure:"
NODES = {"A": "a.example.org", "B": "b.example.org", "C": "c.example.org"}
OLD = Flavor(2, 2048, 20, 0, 1536, name="m1.old", flavorid="f-old")  # disk 20 + 2 (1536 MiB rounded up) = 22
NEW = Flavor(4, 4096, 40, 5, 512, name="m1.new", flavorid="f-new")  # disk 40 + 5 + 0 = 45


@dataclasses.dataclass(frozen=True)
class Step:
    action: str
    publisher: str  # host letter, or "api" / "conductor"
    host: str | None  # payload host letter
    state: str = "active"
    task: str | None = None
    flavor: Flavor = OLD
    new_flavor: Flavor | None = None
    bfv: bool = False
    # Nova's request id: one per API action, carried by all its notifications
    request: str = "req-1"
    # host letter -> (vcpus, memory_mb, local_gb, running_vms) after the step; absent = all zero
    expect: dict[str, tuple[int, int, int, int]] = dataclasses.field(default_factory=dict)

    @property
    def priority(self) -> str:
        return "ERROR" if self.action.endswith(".error") or self.is_failure else "INFO"

    @property
    def is_failure(self) -> bool:
        """``failure:<function>``: that compute manager function raised (wrap_exception)."""
        return self.action.startswith(FAILURE)


def hold(flavor: Flavor, vms: int = 0, bfv: bool = False) -> tuple[int, int, int, int]:
    root = 0 if bfv else flavor.root_gb
    # Placement's DISK_GB, the default [accounting] disk_rounding: swap rounded up to a GiB
    return (flavor.vcpus, flavor.memory_mb, root + flavor.ephemeral_gb + -(-flavor.swap // 1024), vms)


def plus(*holds: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return tuple(sum(values) for values in zip(*holds, strict=True))  # type: ignore[return-value]


def render(step: Step, fmt: str, instance: str, second: int) -> dict[str, Any]:
    """The inner oslo message for ``step`` in ``fmt`` ("versioned" or "legacy")."""
    timestamp = factories.T0 + datetime.timedelta(seconds=second)
    if step.is_failure:
        return _failure(step, fmt, instance, timestamp)
    if fmt == "versioned":
        return factories.message(
            "instance." + step.action,
            _versioned_payload(step, instance),
            _publisher(step, fmt),
            timestamp,
            step.priority,
            request_id=step.request,
        )
    return factories.message(
        "compute.instance." + _legacy_name(step.action),
        _legacy_payload(step, instance),
        _publisher(step, fmt),
        timestamp,
        step.priority,
        request_id=step.request,
    )


def _failure(step: Step, fmt: str, instance: str, timestamp: datetime.datetime) -> dict[str, Any]:
    """What ``wrap_exception`` sends: versioned ``compute.exception`` (ExceptionPayload,
    no instance, the innermost frame as function), or the legacy error named after the
    manager's function with the call's arguments."""
    function = step.action[len(FAILURE) :]
    if fmt == "versioned":
        payload = {
            "nova_object.name": "ExceptionPayload",
            "nova_object.namespace": "nova",
            "nova_object.version": "1.1",
            "nova_object.data": {
                "exception": "ResizeError",
                "exception_message": "Resize error: hypervisor refused",
                "function_name": "migrate_disk_and_power_off",
                "module_name": "nova.virt.fake",
                "traceback": "Traceback (most recent call last): ...",
            },
        }
        return factories.message(
            "compute.exception", payload, _publisher(step, fmt), timestamp, "ERROR", request_id=step.request
        )
    args = {"instance": {"uuid": instance, "host": f"cmp{step.host}"}, "migration": {"id": 1}}
    payload = {"exception": "Resize error: hypervisor refused", "args": args}
    return factories.message(
        function, payload, _publisher(step, fmt), timestamp, "ERROR", request_id=step.request
    )


def _publisher(step: Step, fmt: str) -> str:
    service = {"api": "nova-api", "conductor": "nova-conductor"}.get(step.publisher, "nova-compute")
    host = step.publisher if step.publisher in ("api", "conductor") else f"cmp{step.publisher}"
    return f"{service}:{host}" if fmt == "versioned" else f"compute.{host}"


def _legacy_name(action: str) -> str:
    base, dot, phase = action.partition(".")
    return LEGACY_ACTIONS.get(base, base) + dot + phase


def _location(step: Step) -> tuple[str | None, str | None]:
    if step.host is None:
        return None, None
    return f"cmp{step.host}", NODES[step.host]


def _flavor_payload(flavor: Flavor) -> dict[str, Any]:
    payload = factories.flavor_payload(
        flavor.vcpus,
        flavor.memory_mb,
        flavor.root_gb,
        flavor.ephemeral_gb,
        flavor.swap,
        name=str(flavor.name),
    )
    payload["nova_object.data"]["flavorid"] = flavor.flavorid
    return payload


def _versioned_payload(step: Step, instance: str) -> dict[str, Any]:
    host, node = _location(step)
    return factories.instance_payload(
        instance,
        host=host,
        node=node,
        state=step.state,
        task_state=step.task,
        flavor=_flavor_payload(step.flavor),
        new_flavor=_flavor_payload(step.new_flavor) if step.new_flavor else None,
        image_uuid="" if step.bfv else "a2459075-d96c-40d5-893e-577ff92e721c",
        project="proj-1",
        request_id=step.request,
    )


def _legacy_payload(step: Step, instance: str) -> dict[str, Any]:
    host, node = _location(step)
    flavor = step.flavor
    payload: dict[str, Any] = {
        "instance_id": instance,
        "tenant_id": "proj-1",
        "user_id": "fake",
        "host": host,
        "node": node,
        "state": step.state,
        "state_description": step.task or "",
        "memory_mb": flavor.memory_mb,
        "vcpus": flavor.vcpus,
        "root_gb": flavor.root_gb,
        "ephemeral_gb": flavor.ephemeral_gb,
        "disk_gb": flavor.root_gb + flavor.ephemeral_gb,
        "instance_type": flavor.name,
        "instance_flavor_id": flavor.flavorid,
        "image_ref_url": "http://glance:9292/images/" + ("" if step.bfv else "a2459075"),
    }
    # Nova's legacy resize.prep.end names the new flavor; .start does not.
    if step.new_flavor and step.action == "resize_prep.end":
        payload["new_instance_type"] = step.new_flavor.name
        payload["new_instance_type_id"] = 7
    return payload
