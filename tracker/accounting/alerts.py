"""When a value crosses its limit (pure): an alert is raised once per crossing,
on the change that went over, never again while it stays over."""

from collections.abc import Mapping

from tracker.accounting.capacity import ResourceView

UNLIMITED = -1


def overcommitted(resources: Mapping[str, ResourceView]) -> dict[str, ResourceView]:
    """Resource classes whose usage exceeds their capacity (unknown capacity: never)."""
    return {
        name: view
        for name, view in resources.items()
        if view.capacity is not None and view.used > view.capacity
    }


def newly_overcommitted(
    before: Mapping[str, ResourceView] | None, after: Mapping[str, ResourceView]
) -> dict[str, ResourceView]:
    """What went over with this change: empty unless a class crossed its capacity now."""
    over = overcommitted(after)
    was_over = overcommitted(before) if before is not None else {}
    return over if set(over) - set(was_over) else {}


def exceeds(used: int, limit: int) -> bool:
    return limit != UNLIMITED and used > limit


def crossed(before: int, after: int, limit: int) -> bool:
    """``after`` is over ``limit`` and ``before`` was not."""
    return exceeds(after, limit) and not exceeds(before, limit)
