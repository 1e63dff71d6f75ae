"""The tracker's side of a run: an empty database ready for the feed, and the verdict on it.

Before the clock starts, the database is migrated and every node of the feed
registered, as an operator does before a cloud's notifications arrive; the
registrations' capacity notifications are then drained from the outbox, so
that the timed run publishes only what its own events caused. After the
run, the database must hold exactly the oracle's usage per node and per
project (tools/oracle_check.py), its counters must equal the sum of its
allocations (``Store.audit``), no message may have been dead-lettered and the
queue must be empty: a fast wrong answer is not a result.
"""

from __future__ import annotations

from typing import Any

import oracle_check
from bench_broker import Names
from bench_consumers import RABBIT
from bench_feeds import Feed

from tracker import conf as tracker_conf
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database


def overrides(url: str, names: Names) -> dict[str, dict[str, Any]]:
    """The only options a run sets: where to connect and which entities are its own."""
    return {
        "DEFAULT": {"transport_url": RABBIT},
        "database": {"connection": url},
        "nova_notifications": {
            "exchange": names.nova,
            "queue": names.queue,
            "dead_letter_queue": names.dead_letter,
        },
        "capacity_notifications": {"exchange": names.capacity},
    }


def _store(url: str) -> tuple[Database, Store]:
    conf = tracker_conf.load([], default_config_files=[])
    conf.set_override("connection", url, group="database")
    db = Database.from_conf(conf)
    return db, Store(db, conf)


def prepare(url: str, feed: Feed) -> None:
    """Schema, node inventory and flavors; announcements of the registration discarded."""
    db, store = _store(url)
    try:
        migration.upgrade(db.engine)
        oracle_check.register(store, feed.inventory, feed.flavors)
        while store.drain_outbox(1000, lambda payloads: None):
            pass
    finally:
        db.dispose()


def verdict(url: str, feed: Feed, result: dict[str, Any], depth: int, sent: int | None = None) -> list[str]:
    """Everything that is wrong after the run; empty when the run counts. ``sent``: how
    many messages were published, if not the feed once."""
    problems = []
    if not result.get("finished"):
        problems.append(f"did not finish: received {result.get('received')} of {sent or len(feed)}")
    dead = result.get("metrics", {}).get("dead_lettered", 0)
    if dead:
        problems.append(f"{dead} message(s) dead-lettered")
    if depth:
        problems.append(f"{depth} message(s) left in the queue")
    db, store = _store(url)
    try:
        problems += oracle_check.differences(feed.oracle, store.node_views(), store.project_usage())
        problems += [f"audit: {problem}" for problem in store.audit()]
    finally:
        db.dispose()
    return problems


def feed_size(oracle: dict[str, Any]) -> str:
    return f"{len(oracle['nodes'])} nodes, {len(oracle['projects'])} projects"


def verdict_text(problems: list[str], size: str) -> str:
    if not problems:
        return f"MATCHES the oracle ({size}), audit clean, nothing dead-lettered, queue empty"
    shown = "; ".join(problems[:5])
    return f"WRONG in {len(problems)} place(s): {shown}" + (" ..." if len(problems) > 5 else "")
