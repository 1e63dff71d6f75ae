"""Per-project limits ([quota] defaults, per-project overrides) and their crossings."""

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg

from tracker.accounting import alerts
from tracker.db import upsert
from tracker.db.anyof import any_of
from tracker.db.holdings import Change
from tracker.db.models import ProjectQuota, ProjectUsage

EVENT_TYPE = "quota.exceeded"
RESOURCES = ("instances", "vcpus", "memory_mb", "local_gb")
QUOTAS: sa.Table = ProjectQuota.__table__  # type: ignore[assignment]
USAGE: sa.Table = ProjectUsage.__table__  # type: ignore[assignment]

Limits = Mapping[str, int]


def defaults(conf: cfg.ConfigOpts) -> dict[str, int]:
    return {resource: getattr(conf.quota, resource) for resource in RESOURCES}


def _change(change: Change, resource: str) -> int:
    used, instances = change
    return instances if resource == "instances" else int(getattr(used, resource))


def crossings(
    connection: sa.Connection, changes: Mapping[str, Change], default_limits: Limits
) -> list[dict[str, Any]]:
    """What the batch's project changes took over a limit, in ONE statement (it runs
    in every batch): usage now, joined to the overrides; usage before is now minus the change."""
    if not changes:
        return []
    query = (
        sa.select(USAGE, QUOTAS.c.resource, QUOTAS.c.limit)
        .outerjoin(QUOTAS, QUOTAS.c.project_id == USAGE.c.project_id)
        .where(any_of(connection, USAGE.c.project_id, sorted(changes)))
        .order_by(USAGE.c.project_id)
    )
    usage: dict[str, Any] = {}
    limits: dict[str, dict[str, int]] = {}
    for row in connection.execute(query):
        usage[row.project_id] = row
        project_limits = limits.setdefault(row.project_id, dict(default_limits))
        if row.resource is not None:
            project_limits[row.resource] = row.limit
    found = []
    for project_id, row in usage.items():
        for resource in RESOURCES:
            after = int(getattr(row, resource))
            limit = limits[project_id][resource]
            if alerts.crossed(after - _change(changes[project_id], resource), after, limit):
                found.append({"project_id": project_id, "resource": resource, "limit": limit, "used": after})
    return found


def set_limits(
    connection: sa.Connection, project_id: str, limits: Limits, default_limits: Limits
) -> list[dict[str, Any]]:
    """Override the defaults for one project; returns the limits it is now over and was
    not before (a limit set under the usage is a crossing too)."""
    usage = connection.execute(
        sa.select(USAGE).where(USAGE.c.project_id == project_id).with_for_update()
    ).one_or_none()
    before = {**default_limits, **overrides(connection, project_id).get(project_id, {})}
    rows = [
        {"project_id": project_id, "resource": name, "limit": value} for name, value in sorted(limits.items())
    ]
    upsert.insert_missing(connection, QUOTAS, rows)
    for row in rows:
        connection.execute(
            sa.update(QUOTAS)
            .where(QUOTAS.c.project_id == project_id, QUOTAS.c.resource == row["resource"])
            .values(limit=row["limit"])
        )
    if usage is None:
        return []
    after = {**before, **limits}
    return [
        {
            "project_id": project_id,
            "resource": resource,
            "limit": after[resource],
            "used": getattr(usage, resource),
        }
        for resource in RESOURCES
        if alerts.exceeds(getattr(usage, resource), after[resource])
        and not alerts.exceeds(getattr(usage, resource), before[resource])
    ]


def overrides(connection: sa.Connection, project_id: str | None = None) -> dict[str, dict[str, int]]:
    """Per-project overrides, of every project or of ``project_id``."""
    query = sa.select(QUOTAS).order_by(QUOTAS.c.project_id, QUOTAS.c.resource)
    if project_id is not None:
        query = query.where(QUOTAS.c.project_id == project_id)
    found: dict[str, dict[str, int]] = {}
    for row in connection.execute(query):
        found.setdefault(row.project_id, {})[row.resource] = row.limit
    return found
