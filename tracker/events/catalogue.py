"""Nova's instance event names, versioned and legacy, mapped to one vocabulary."""

VERSIONED_PREFIX = "instance."
LEGACY_PREFIX = "compute.instance."
# wrap_exception's versioned notification: ExceptionPayload, no instance.
VERSIONED_EXCEPTION = "compute.exception"
# wrap_exception's legacy notification is named after the compute manager's
# function, its payload ``args`` holding the call's arguments. These are the
# functions of a resize or cold migration whose failure changes what Placement
# holds and that no other notification reports (nova/compute/manager.py; the
# README's lifecycle table lists every failure and what reports it).
LEGACY_MOVE_FAILURES = frozenset({"prep_resize", "resize_instance", "finish_resize", "confirm_resize"})

# Legacy suffixes whose versioned name differs (nova-events.md, "Name mapping").
# Keys are matched as prefixes of the legacy suffix; the phase is kept.
_LEGACY_RENAMES = (
    ("resize.prep.", "resize_prep."),
    ("finish_resize.", "resize_finish."),
    ("resize.confirm.", "resize_confirm."),
    ("resize.revert.", "resize_revert."),
    ("live_migration.pre.", "live_migration_pre."),
    ("live_migration._post.", "live_migration_post."),
    ("live_migration.post.dest.", "live_migration_post_dest."),
    ("live_migration._rollback.", "live_migration_rollback."),
    ("live_migration.rollback.dest.", "live_migration_rollback_dest."),
    ("live.migration.abort.", "live_migration_abort."),
    ("live.migration.force.complete.", "live_migration_force_complete."),
    ("rebuild.scheduled", "rebuild_scheduled"),
)


def versioned_action(event_type: str) -> str | None:
    """``instance.resize_prep.end`` → ``resize_prep.end``; None if not an instance event."""
    if event_type.startswith(VERSIONED_PREFIX):
        return event_type[len(VERSIONED_PREFIX) :]
    return None


def legacy_action(event_type: str) -> str | None:
    """``compute.instance.resize.prep.end`` → ``resize_prep.end``; None if not one."""
    if not event_type.startswith(LEGACY_PREFIX):
        return None
    suffix = event_type[len(LEGACY_PREFIX) :]
    for legacy, versioned in _LEGACY_RENAMES:
        if suffix.startswith(legacy):
            return versioned + suffix[len(legacy) :]
    return suffix
