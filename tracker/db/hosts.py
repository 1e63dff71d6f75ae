"""What a scheduler needs of a host besides usage: its nova-compute service's state
(``service.update``) and its aggregates and zone (``aggregate.*``).

Each record keeps the time of the notification it came from: an older one
(redelivered, reordered) changes nothing. Each function returns the hosts
whose facts changed, whose nodes are then announced again.
"""

import dataclasses
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from tracker.accounting.history import time_text
from tracker.db import upsert
from tracker.db.anyof import any_of
from tracker.db.models import Aggregate, AggregateHost, HostService
from tracker.events.hosts import AggregateState, ServiceStatus

SERVICES: sa.Table = HostService.__table__  # type: ignore[assignment]
AGGREGATES: sa.Table = Aggregate.__table__  # type: ignore[assignment]
MEMBERS: sa.Table = AggregateHost.__table__  # type: ignore[assignment]
_NEVER = ""  # sorts before every notification time


@dataclasses.dataclass(frozen=True)
class HostFacts:
    disabled: bool = False
    disabled_reason: str | None = None
    forced_down: bool = False
    # an aggregate's zone wins over the service's (Nova derives the latter from it)
    availability_zone: str | None = None
    aggregates: tuple[tuple[str, str], ...] = ()  # (uuid, name), by name


NO_FACTS = HostFacts()


def facts(connection: sa.Connection, hosts: Iterable[str], default_zone: str) -> dict[str, HostFacts]:
    """The facts of ``hosts`` in ONE statement (it runs in every batch); a host in no
    zone aggregate is in ``default_zone``, as in Nova."""
    names = sorted(set(hosts))
    if not names:
        return {}
    service = sa.select(
        SERVICES.c.host,
        sa.literal(None).label("aggregate_uuid"),
        sa.literal(None).label("aggregate_name"),
        SERVICES.c.availability_zone,
        SERVICES.c.disabled,
        SERVICES.c.disabled_reason,
        SERVICES.c.forced_down,
    ).where(any_of(connection, SERVICES.c.host, names))
    member = (
        sa.select(
            MEMBERS.c.host,
            AGGREGATES.c.uuid,
            AGGREGATES.c.name,
            AGGREGATES.c.availability_zone,
            sa.false(),
            sa.literal(None),
            sa.false(),
        )
        .join(AGGREGATES, AGGREGATES.c.uuid == MEMBERS.c.aggregate_uuid)
        .where(any_of(connection, MEMBERS.c.host, names), AGGREGATES.c.deleted.is_(False))
    )
    gathered: dict[str, _Gathered] = {}
    for host, uuid, name, zone, disabled, reason, forced_down in connection.execute(
        sa.union_all(service, member)
    ):
        record = gathered.setdefault(host, _Gathered())
        if uuid is None:
            record.service = HostFacts(bool(disabled), reason, bool(forced_down))
            record.service_zone = zone
        else:
            record.aggregates.append((uuid, name))
            record.aggregate_zone = record.aggregate_zone or zone
    blank = HostFacts(availability_zone=default_zone)
    return {host: gathered[host].facts(default_zone) if host in gathered else blank for host in names}


@dataclasses.dataclass
class _Gathered:
    service: HostFacts = NO_FACTS
    service_zone: str | None = None
    aggregate_zone: str | None = None
    aggregates: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def facts(self, default_zone: str) -> HostFacts:
        return dataclasses.replace(
            self.service,
            availability_zone=self.aggregate_zone or self.service_zone or default_zone,
            aggregates=tuple(sorted(self.aggregates, key=lambda pair: (pair[1], pair[0]))),
        )


def _locked(connection: sa.Connection, key: sa.Column[str], blank: dict[str, object]) -> sa.Row[Any]:
    """The row whose ``key`` is ``blank[key.name]``, created as ``blank`` (never noted) if
    missing, locked: two workers noting the same host or aggregate take turns."""
    upsert.insert_missing(connection, key.table, [{**blank, "noted_at": _NEVER}])  # type: ignore[arg-type]
    return connection.execute(sa.select(key.table).where(key == blank[key.name]).with_for_update()).one()


def note_service(connection: sa.Connection, status: ServiceStatus) -> set[str]:
    """Keep the newest state of the host's service; its host if anything changed."""
    blank = {"host": status.host, "disabled": False, "forced_down": False}
    row = _locked(connection, SERVICES.c.host, blank)
    noted_at = time_text(status.timestamp)
    if row.noted_at >= noted_at:
        return set()
    values = {
        "disabled": status.disabled,
        "disabled_reason": status.disabled_reason,
        "forced_down": status.forced_down,
        "availability_zone": status.availability_zone,
    }
    connection.execute(
        sa.update(SERVICES).where(SERVICES.c.host == status.host).values(**values, noted_at=noted_at)
    )
    changed = any(getattr(row, name) != value for name, value in values.items()) or row.noted_at == _NEVER
    return {status.host} if changed else set()


def note_aggregate(connection: sa.Connection, state: AggregateState) -> set[str]:
    """Keep the newest snapshot of the aggregate; the hosts that joined or left it,
    or all of its hosts when its name or zone changed."""
    row = _locked(connection, AGGREGATES.c.uuid, {"uuid": state.uuid, "name": state.name, "deleted": False})
    noted_at = time_text(state.timestamp)
    if row.noted_at >= noted_at:
        return set()
    old = set(connection.scalars(sa.select(MEMBERS.c.host).where(MEMBERS.c.aggregate_uuid == state.uuid)))
    new = set() if state.deleted else set(old if state.hosts is None else state.hosts)
    connection.execute(
        sa.update(AGGREGATES)
        .where(AGGREGATES.c.uuid == state.uuid)
        .values(
            name=state.name,
            availability_zone=state.availability_zone,
            deleted=state.deleted,
            noted_at=noted_at,
        )
    )
    if old - new:
        connection.execute(
            sa.delete(MEMBERS).where(
                MEMBERS.c.aggregate_uuid == state.uuid, MEMBERS.c.host.in_(sorted(old - new))
            )
        )
    if new - old:
        connection.execute(
            MEMBERS.insert(), [{"aggregate_uuid": state.uuid, "host": host} for host in sorted(new - old)]
        )
    renamed = (row.name, row.availability_zone, row.deleted) != (
        state.name,
        state.availability_zone,
        state.deleted,
    )
    return (old | new) if renamed else (old ^ new)
