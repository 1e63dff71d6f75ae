"""A database main's code filled (revision 0007: nodes, instances, allocations and a
capacity notification not yet published), upgraded to the head with the tracker's own
engine (on SQLite: foreign keys enforced, as the worker runs)."""

import json
from dataclasses import dataclass

import sqlalchemy as sa

from tests.conftest import make_conf
from tracker.db import migration
from tracker.db.engine import Database

BEFORE = "0007"
OLD_PAYLOAD = {"host": "cmp1", "node": "cmp1", "generation": 3, "running_vms": 1, "resources": {}}


@dataclass
class Upgraded:
    node_uuids: list[str]
    allocations: list[tuple[str, int]]
    outbox_payloads: list[dict[str, object]]


def upgrade_with_data(url: str) -> Upgraded:
    database = Database.from_conf(make_conf(url))
    engine = database.engine
    try:
        migration.upgrade(engine, BEFORE)
        _fill(engine)
        migration.upgrade(engine)
        tables = sa.MetaData()
        tables.reflect(engine)
        with engine.connect() as connection:
            return Upgraded(
                node_uuids=list(
                    connection.execute(sa.select(tables.tables["compute_nodes"].c.uuid)).scalars()
                ),
                allocations=[
                    (row.instance_uuid, row.node_id)
                    for row in connection.execute(sa.select(tables.tables["allocations"]))
                ],
                outbox_payloads=[
                    json.loads(text)
                    for text in connection.execute(
                        sa.select(tables.tables["capacity_outbox"].c.payload)
                    ).scalars()
                ],
            )
    finally:
        database.dispose()


def _fill(engine: sa.Engine) -> None:
    tables = sa.MetaData()
    tables.reflect(engine)
    nodes, instances, allocations, outbox = (
        tables.tables[name] for name in ("compute_nodes", "instances", "allocations", "capacity_outbox")
    )
    inventory = {
        "reserved_vcpus": 0,
        "reserved_memory_mb": 512,
        "reserved_local_gb": 0,
        "cpu_allocation_ratio": 4.0,
        "ram_allocation_ratio": 1.0,
        "disk_allocation_ratio": 1.0,
        "vcpus_used": 2,
        "memory_mb_used": 2048,
        "local_gb_used": 20,
        "running_vms": 1,
        "generation": 3,
        "placeholder": False,
        "updated_at": sa.func.now(),
    }
    with engine.begin() as connection:
        for node_id, name in ((1, "cmp1"), (2, "cmp2")):
            connection.execute(
                nodes.insert().values(id=node_id, host=name, hypervisor_hostname=name, **inventory)
            )
        connection.execute(
            instances.insert().values(
                uuid="i-1",
                project_id="p1",
                host="cmp1",
                node="cmp1",
                vm_state="active",
                deleted=False,
                base_state="{}",
                state="{}",
                event_count=0,
                updated_at=sa.func.now(),
            )
        )
        connection.execute(
            allocations.insert().values(
                instance_uuid="i-1",
                node_id=1,
                role="instance",
                project_id="p1",
                vcpus=2,
                memory_mb=2048,
                local_gb=20,
            )
        )
        connection.execute(
            outbox.insert().values(
                node_id=1, generation=3, payload=json.dumps(OLD_PAYLOAD), created_at=sa.func.now()
            )
        )
