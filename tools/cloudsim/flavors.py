"""Flavor catalogue of the simulated cloud.

The catalogue deliberately contains the shapes that break naive accounting:
ephemeral disks, swap that is not a multiple of 1024 MB (Nova's resource
tracker truncates ``swap / 1024`` into an integer field, so 512 MB counts as 0
GB and 1536 MB as 1 GB) and ``root_gb == 0`` flavors (image-sized root disk,
which the resource tracker counts as 0 GB).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Flavor:
    """The embedded flavor of an instance, as Nova stores it on the instance.

    ``id`` is the database id (legacy ``instance_type_id``); ``flavorid`` is
    the API-visible id (versioned ``flavorid``, legacy ``instance_flavor_id``).
    """

    id: int
    flavorid: str
    name: str
    vcpus: int
    memory_mb: int
    root_gb: int
    ephemeral_gb: int = 0
    swap: int = 0
    rxtx_factor: float = 1.0
    vcpu_weight: int = 0
    is_public: bool = True
    disabled: bool = False
    description: str | None = None
    extra_specs: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def as_dict(self) -> dict[str, object]:
        """Catalogue view used by ``Cloud.flavors()`` (sizes only)."""
        return {
            "flavorid": self.flavorid,
            "name": self.name,
            "vcpus": self.vcpus,
            "memory_mb": self.memory_mb,
            "root_gb": self.root_gb,
            "ephemeral_gb": self.ephemeral_gb,
            "swap": self.swap,
        }


def disk_gb(flavor: Flavor, volume_backed: bool) -> int:
    """DISK_GB Placement allocates to one instance of ``flavor``, and the scheduler
    decides with (the tracker's default ``[accounting] disk_rounding = placement``).

    Mirrors ``scheduler.utils.resources_from_flavor``: root_gb is zeroed for
    boot-from-volume, and swap (MiB) is rounded up to a whole GiB (Nova's resource
    tracker truncates it instead).
    """
    root = 0 if volume_backed else flavor.root_gb
    return root + flavor.ephemeral_gb + -(-flavor.swap // 1024)


CATALOGUE: tuple[Flavor, ...] = (
    Flavor(1, "1", "m1.tiny", 1, 512, 1),
    Flavor(2, "2", "m1.small", 1, 2048, 20),
    Flavor(3, "3", "m1.medium", 2, 4096, 40),
    Flavor(4, "4", "m1.large", 4, 8192, 80),
    Flavor(5, "5", "m1.xlarge", 8, 16384, 160),
    Flavor(6, "c1.swap512", "c1.swap512", 2, 2048, 20, swap=512),
    Flavor(7, "c1.swap1536", "c1.swap1536", 2, 4096, 20, swap=1536),
    Flavor(8, "e1.eph", "e1.ephemeral", 4, 8192, 40, ephemeral_gb=60, swap=2048),
    Flavor(9, "z1.rootless", "z1.rootless", 2, 4096, 0),
    Flavor(10, "z1.rootless-eph", "z1.rootless-eph", 4, 6144, 0, ephemeral_gb=20, swap=1536),
    Flavor(
        11,
        "6d3a2e5c-8f0b-4c43-9f63-3b2f0f1c9a11",
        "r1.highmem",
        4,
        32768,
        50,
        description="memory optimised",
        extra_specs={"hw:mem_page_size": "large"},
    ),
    Flavor(
        12,
        "b2f1c7a4-1d5e-4e8e-9a7c-2c6d0e4f8b22",
        "d1.dedicated",
        4,
        8192,
        40,
        extra_specs={"hw:cpu_policy": "dedicated"},
    ),
)


def by_flavorid(flavorid: str) -> Flavor:
    """Look a catalogue flavor up by its API flavorid."""
    for flavor in CATALOGUE:
        if flavor.flavorid == flavorid:
            return flavor
    raise KeyError(flavorid)
