"""Placement's capacity formula, applied to a node's inventory and usage."""

import dataclasses
import math

from tracker.accounting.usage import Usage


@dataclasses.dataclass(frozen=True)
class Inventory:
    """One resource class of a node; ``total`` None when nobody registered it."""

    total: int | None
    reserved: int
    allocation_ratio: float


@dataclasses.dataclass(frozen=True)
class ResourceView:
    """What a scheduler needs of one resource class, all absolute."""

    total: int | None
    reserved: int
    allocation_ratio: float
    used: int
    capacity: int | None
    free: int | None


def capacity(inventory: Inventory) -> int | None:
    """``(total − reserved) × allocation_ratio``, floored: usage is in whole units,
    so Placement's float comparison admits exactly this many."""
    if inventory.total is None:
        return None
    return math.floor((inventory.total - inventory.reserved) * inventory.allocation_ratio)


def view(inventory: Inventory, used: int) -> ResourceView:
    cap = capacity(inventory)
    return ResourceView(
        total=inventory.total,
        reserved=inventory.reserved,
        allocation_ratio=inventory.allocation_ratio,
        used=used,
        capacity=cap,
        free=None if cap is None else cap - used,
    )


def views(
    vcpus: Inventory, memory_mb: Inventory, local_gb: Inventory, used: Usage
) -> dict[str, ResourceView]:
    return {
        "vcpus": view(vcpus, used.vcpus),
        "memory_mb": view(memory_mb, used.memory_mb),
        "local_gb": view(local_gb, used.local_gb),
    }
