"""Batches for tests: a realistic mix, and the statements a batch takes."""

import sqlalchemy as sa

from tests import factories


def mixed_batch(instances, nodes):
    """Creates, state changes and live migrations of ``instances`` spread over ``nodes``."""
    events = []
    for i in range(instances):
        src, dst = f"cmp{i % nodes}", f"cmp{(i + 1) % nodes}"
        uuid = f"inst-{i}"
        events.append(factories.event("create.end", 1, host=src, node=src, instance=uuid))
        events.append(factories.event("power_off.end", 2, host=src, node=src, instance=uuid, state="stopped"))
        events.append(
            factories.event("live_migration_pre.start", 3, host=src, node=src, publisher=dst, instance=uuid)
        )
        events.append(factories.event("live_migration_post_dest.end", 4, host=dst, node=dst, instance=uuid))
    return events


def count_statements(store, events):
    statements = []

    def count(_conn, _cursor, statement, _parameters, _context, _executemany):
        statements.append(statement)

    sa.event.listen(store.db.engine, "before_cursor_execute", count)
    try:
        outcomes = store.apply_batch(events)
    finally:
        sa.event.remove(store.db.engine, "before_cursor_execute", count)
    return statements, outcomes
