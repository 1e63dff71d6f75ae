"""Rows an event needs that do not exist yet, created outside the main transaction.

The main transaction only locks rows that exist. When it finds one missing it
raises :class:`MissingRows`; the caller creates them in a short transaction of
their own and runs the main one again. Two workers creating the same row then
collide harmlessly on a unique key, instead of holding insert locks inside
the transaction that also locks nodes.
"""

from collections.abc import Iterable

import sqlalchemy.exc
from sqlalchemy import orm

from tracker.accounting.state import Location
from tracker.db import nodes
from tracker.db.engine import Database
from tracker.db.models import Instance, ProjectUsage


class MissingRows(Exception):
    def __init__(
        self,
        instance_uuid: str | None = None,
        locations: Iterable[Location] = (),
        projects: Iterable[str] = (),
    ) -> None:
        self.instance_uuid = instance_uuid
        self.locations = sorted(set(locations), key=lambda loc: (loc.host, loc.node or ""))
        self.projects = sorted(set(projects))
        super().__init__(
            f"missing rows: instance={instance_uuid} nodes={self.locations} projects={self.projects}"
        )


def create(db: Database, missing: MissingRows, defaults: nodes.InventoryDefaults) -> None:
    try:
        with db.transaction() as session:
            _create_all(session, missing, defaults)
    except sqlalchemy.exc.IntegrityError:
        # Another worker created one of them first: the retry will find it.
        pass


def _create_all(session: orm.Session, missing: MissingRows, defaults: nodes.InventoryDefaults) -> None:
    if missing.instance_uuid and session.get(Instance, missing.instance_uuid) is None:
        session.add(Instance(uuid=missing.instance_uuid, deleted=False, base_state=""))
    for location in missing.locations:
        name = location.node or location.host
        existing = nodes.find(session, location.host, name)
        if existing is None:
            placeholder = location.node is None
            session.add(nodes.new_node(location.host, name, defaults, placeholder=placeholder))
        elif location.node is not None and existing.placeholder:
            existing.placeholder = False  # a payload named it: it is a real node
    for project_id in missing.projects:
        if session.get(ProjectUsage, project_id) is None:
            session.add(ProjectUsage(project_id=project_id, vcpus=0, memory_mb=0, local_gb=0, instances=0))
