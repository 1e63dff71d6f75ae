"""The flavor catalogue and what it completes in legacy events."""

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from tracker.db.models import FlavorRow
from tracker.events import fields
from tracker.events.model import Flavor, InstanceEvent

LOG = logging.getLogger(__name__)

# ``openstack flavor list --long -f json`` names, mapped to Nova's field names.
_CLI_NAMES = {
    "ID": "flavorid",
    "Name": "name",
    "VCPUs": "vcpus",
    "RAM": "memory_mb",
    "Disk": "root_gb",
    "Ephemeral": "ephemeral_gb",
    "Swap": "swap",
}


def from_record(record: Mapping[str, Any]) -> Flavor:
    """A flavor from Nova's field names or from the OpenStack CLI's JSON."""
    data = {_CLI_NAMES.get(key, key): value for key, value in record.items()}
    if data.get("swap") == "":
        data["swap"] = 0  # the CLI prints no swap as an empty string
    if isinstance(data.get("flavorid"), int):
        data["flavorid"] = str(data["flavorid"])
    fields.required_text(data, "name")
    fields.required_text(data, "flavorid")
    return fields.flavor(data)


def upsert(session: orm.Session, flavor: Flavor) -> None:
    row = session.get(FlavorRow, flavor.flavorid) or FlavorRow(flavorid=flavor.flavorid)
    for name in ("name", "vcpus", "memory_mb", "root_gb", "ephemeral_gb", "swap"):
        setattr(row, name, getattr(flavor, name))
    session.add(row)


def listing(session: orm.Session) -> list[Flavor]:
    rows = session.scalars(sa.select(FlavorRow).order_by(FlavorRow.name))
    return [_to_flavor(row) for row in rows]


@dataclasses.dataclass(frozen=True)
class Catalogue:
    """The catalogue flavors a batch's legacy events name, by flavor id and by name."""

    by_id: Mapping[str, Flavor]
    by_name: Mapping[str, Flavor]


def load(connection: sa.Connection, events: Sequence[InstanceEvent]) -> Catalogue:
    """One query, and none when no legacy event needs completing."""
    legacy = [e for e in events if e.legacy]
    ids = {e.flavor.flavorid for e in legacy if e.flavor is not None and e.flavor.flavorid is not None}
    names = {e.new_flavor_name for e in legacy if e.new_flavor_name}
    if not ids and not names:
        return Catalogue({}, {})
    table = FlavorRow.__table__
    query = sa.select(table).where(sa.or_(table.c.flavorid.in_(ids), table.c.name.in_(names)))
    found = [_to_flavor(row) for row in connection.execute(query)]
    return Catalogue({f.flavorid: f for f in found if f.flavorid}, {f.name: f for f in found if f.name})


def complete(catalogue: Catalogue, event: InstanceEvent) -> InstanceEvent:
    """Give a legacy event the swap of its flavor and the sizes of its new flavor."""
    if not event.legacy:
        return event
    flavor = event.flavor
    if flavor is not None and flavor.flavorid is not None:
        known = catalogue.by_id.get(flavor.flavorid)
        if known is not None:
            flavor = dataclasses.replace(flavor, swap=known.swap)
        else:
            LOG.warning("flavor %s is not in the catalogue: its swap counts as 0", flavor.flavorid)
    new_flavor = _by_name(catalogue, event.new_flavor_name) if event.new_flavor_name else None
    return dataclasses.replace(event, flavor=flavor, new_flavor=new_flavor or event.new_flavor)


def _by_name(catalogue: Catalogue, name: str) -> Flavor | None:
    flavor = catalogue.by_name.get(name)
    if flavor is None:
        LOG.warning("flavor %r is not in the catalogue: a resize to it holds nothing until it finishes", name)
    return flavor


def _to_flavor(row: Any) -> Flavor:
    return Flavor(row.vcpus, row.memory_mb, row.root_gb, row.ephemeral_gb, row.swap, row.name, row.flavorid)
