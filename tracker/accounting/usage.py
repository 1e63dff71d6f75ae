"""Nova's usage formula (resource tracker ``_update_usage`` / ``_get_usage_dict``)."""

import dataclasses

from tracker.events.model import Flavor


@dataclasses.dataclass(frozen=True)
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


def usage_of(flavor: Flavor, boot_from_volume: bool) -> Usage:
    """One instance's usage of ``flavor``.

    Disk is root + ephemeral + swap/1024: swap is in MiB and Nova adds
    ``swap / 1024`` to the integer ``local_gb_used``, so a partial GiB is
    truncated per instance. The root disk of a boot-from-volume instance lives
    in Cinder and does not count.
    """
    root_gb = 0 if boot_from_volume else flavor.root_gb
    return Usage(
        vcpus=flavor.vcpus,
        memory_mb=flavor.memory_mb,
        local_gb=root_gb + flavor.ephemeral_gb + flavor.swap // 1024,
    )
