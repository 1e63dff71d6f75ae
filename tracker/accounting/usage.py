"""Nova's usage formula (resource tracker ``_update_usage`` / ``_get_usage_dict``)."""

import dataclasses

from tracker.events.model import Flavor


@dataclasses.dataclass(frozen=True, slots=True)
class Usage:
    """Physical usage, before allocation ratios, as the resource tracker counts it."""

    vcpus: int = 0
    memory_mb: int = 0
    local_gb: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.vcpus + other.vcpus,
            self.memory_mb + other.memory_mb,
            self.local_gb + other.local_gb,
        )

    def __neg__(self) -> "Usage":
        return Usage(-self.vcpus, -self.memory_mb, -self.local_gb)

    def __sub__(self, other: "Usage") -> "Usage":
        return self + -other


ZERO = Usage()

# How a swap that is not a whole GiB counts ([accounting] disk_rounding).
RESOURCE_TRACKER = "resource_tracker"
PLACEMENT = "placement"
ROUNDINGS = (RESOURCE_TRACKER, PLACEMENT)


def usage_of(flavor: Flavor, boot_from_volume: bool, rounding: str = PLACEMENT) -> Usage:
    """One instance's usage of ``flavor``.

    Disk is root + ephemeral + swap in GiB; swap is in MiB. Nova's resource
    tracker adds ``swap / 1024`` to the integer ``local_gb_used``, truncating a
    partial GiB per instance; Placement's DISK_GB allocation rounds it up
    (``scheduler/utils.py`` ResourceRequest). The root disk of a
    boot-from-volume instance lives in Cinder and does not count.
    """
    root_gb = 0 if boot_from_volume else flavor.root_gb
    swap_gb = -(-flavor.swap // 1024) if rounding == PLACEMENT else flavor.swap // 1024
    return Usage(
        vcpus=flavor.vcpus,
        memory_mb=flavor.memory_mb,
        local_gb=root_gb + flavor.ephemeral_gb + swap_gb,
    )
