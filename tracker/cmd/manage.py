"""``tracker-manage``: schema, node inventory, replay, audit."""

import datetime
import json
import sys
import threading
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

from tracker import escape, replay
from tracker.bus import amqp, deadletter, decide
from tracker.bus.publisher import CapacityPublisher
from tracker.bus.relay import Relay
from tracker.cmd import common
from tracker.cmd.status import render
from tracker.conf.accounting import MAX_COUNT, MAX_RATIO
from tracker.db import flavors, migration
from tracker.db import nodes as node_rows
from tracker.db.api import NodeInventory, Store
from tracker.db.quota import RESOURCES as QUOTA_RESOURCES


def _count(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_COUNT:
        raise ValueError("a count is at least 0 and fits the inventory column")
    return value


def _ratio(text: str) -> float:
    value = float(text)
    if not node_rows.valid_ratio(value) or value > MAX_RATIO:
        raise ValueError("an allocation ratio is a finite number above 0 that fits the column")
    return value


# argparse names the option and the value it refused, exit 2
_count.__name__ = f"count (an integer from 0 to {MAX_COUNT})"
_ratio.__name__ = f"ratio (a number > 0, at most {MAX_RATIO:g})"

_INVENTORY_ARGS: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("vcpus", _count),
    ("memory_mb", _count),
    ("local_gb", _count),
    ("reserved_vcpus", _count),
    ("reserved_memory_mb", _count),
    ("reserved_local_gb", _count),
    ("cpu_allocation_ratio", _ratio),
    ("ram_allocation_ratio", _ratio),
    ("disk_allocation_ratio", _ratio),
)


def _add_parsers(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="Database schema.").add_subparsers(dest="db_action")
    db.add_parser("sync", help="Upgrade the schema to the latest version.").set_defaults(func=db_sync)
    db.add_parser("version", help="Print the schema version.").set_defaults(func=db_version)

    node = subparsers.add_parser("node", help="Compute node inventory.").add_subparsers(dest="node_action")
    node_set = node.add_parser("set", help="Register a node or change its inventory.")
    node_set.add_argument("compute_host", metavar="HOST", help="Nova's host (payload 'host')")
    node_set.add_argument("hypervisor_hostname", metavar="NODE", help="Nova's node (payload 'node')")
    for name, kind in _INVENTORY_ARGS:
        node_set.add_argument("--" + name.replace("_", "-"), dest=name, type=kind)
    node_set.set_defaults(func=node_set_cmd)
    node.add_parser("list", help="Print every node.").set_defaults(func=node_list)

    flavor = subparsers.add_parser("flavor", help="Flavor catalogue (legacy format).").add_subparsers(
        dest="flavor_action"
    )
    flavor_set = flavor.add_parser("set", help="Add or replace one flavor.")
    flavor_set.add_argument("flavorid")
    flavor_set.add_argument("name")
    for name, _unit in _FLAVOR_ARGS:
        flavor_set.add_argument(
            "--" + name.replace("_", "-"), dest=name, type=int, required=name in _REQUIRED_SIZES
        )
    flavor_set.set_defaults(func=flavor_set_cmd)
    flavor_import = flavor.add_parser(
        "import", help="Load a JSON list: 'openstack flavor list --long -f json', or Nova field names."
    )
    flavor_import.add_argument("file")
    flavor_import.set_defaults(func=flavor_import_cmd)
    flavor.add_parser("list", help="Print the catalogue.").set_defaults(func=flavor_list)

    replay_parser = subparsers.add_parser("replay", help="Apply a JSON-lines file of notifications.")
    replay_parser.add_argument("file", help="path, or - for standard input")
    replay_parser.add_argument(
        "--publish", action="store_true", help="Publish capacity notifications afterwards."
    )
    replay_parser.set_defaults(func=replay_cmd)

    subparsers.add_parser("audit", help="Check node counters against allocations.").set_defaults(func=audit)

    announce = subparsers.add_parser(
        "announce", help="Publish the current capacity of every node (or of --node) now."
    )
    announce.add_argument(
        "--node", action="append", default=[], metavar="NAME", help="A host or nodename; repeat for more."
    )
    announce.set_defaults(func=announce_cmd)

    quota = subparsers.add_parser("quota", help="Per-project limits (alerts only).").add_subparsers(
        dest="quota_action"
    )
    quota_set = quota.add_parser("set", help="Override the [quota] defaults for one project (-1: no limit).")
    quota_set.add_argument("project_id", metavar="PROJECT", type=_project_id)
    for name in QUOTA_RESOURCES:
        quota_set.add_argument("--" + name.replace("_", "-"), dest=name, type=_limit)
    quota_set.set_defaults(func=quota_set_cmd)
    quota.add_parser("list", help="Print the defaults and every override.").set_defaults(func=quota_list)

    purge = subparsers.add_parser("purge", help="Forget instances deleted long ago (their tombstones).")
    purge.add_argument(
        "--older-than-days",
        type=_at_least_one_day,
        default=30.0,
        help="Keep tombstones younger than this, at least 1 (default 30).",
    )
    purge.set_defaults(func=purge_cmd)

    dead = subparsers.add_parser("dead-letter", help="Messages set aside as poison.").add_subparsers(
        dest="dead_letter_action"
    )
    for name, func, text in (
        ("list", dead_letter_list, "Print each dead letter's reason."),
        (
            "replay",
            dead_letter_replay,
            "Apply the dead letters again (after a fix); those still failing stay.",
        ),
    ):
        action = dead.add_parser(name, help=text)
        action.add_argument(
            "--limit", type=int, default=1000, help="At most this many letters (default 1000)."
        )
        action.set_defaults(func=func)
        if name == "list":
            action.add_argument("--format", choices=["text", "json"], default="text", help="Output format.")


_FLAVOR_ARGS = (
    ("vcpus", ""),
    ("memory_mb", "MiB"),
    ("root_gb", "GiB"),
    ("ephemeral_gb", "GiB"),
    ("swap", "MiB"),
)
_REQUIRED_SIZES = ("vcpus", "memory_mb", "root_gb")


def _at_least_one_day(text: str) -> float:
    days = float(text)
    if days < 1:
        raise ValueError("tombstones younger than a day still guard against late events")
    return days


def _limit(text: str) -> int:
    value = int(text)
    if not -1 <= value <= _LARGEST_LIMIT:
        raise ValueError("a limit is -1 (none) or 0 to 2**63-1")
    return value


def _project_id(text: str) -> str:
    if not 0 < len(text) <= _PROJECT_ID_LENGTH or not text.isprintable():
        raise ValueError(f"a project id is 1 to {_PROJECT_ID_LENGTH} printable characters")
    return text


_LARGEST_LIMIT = 2**63 - 1  # a BIGINT column
_PROJECT_ID_LENGTH = 255  # project_quotas.project_id, as Nova's and Keystone's
# argparse names the argument and the value it refused, in one line, exit 2
_limit.__name__ = "limit (-1: none, or 0 to 2**63-1)"
_project_id.__name__ = "project id"


def main(argv: list[str] | None = None) -> int:
    return common.run(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    command = cfg.SubCommandOpt("command", handler=_add_parsers, help="What to do.")
    conf = common.start(argv, [command], description="Manage the tracker.")
    func: Callable[[cfg.ConfigOpts, Store], int] | None = getattr(conf.command, "func", None)
    if func is None:
        print(
            "usage: tracker-manage {db sync|db version|node set|node list|replay|audit|announce|"
            "quota set|quota list}",
            file=sys.stderr,
        )
        return 2
    db = common.database(conf, create=func is db_sync, schema=func not in (db_sync, db_version))
    store = Store(db, conf)
    try:
        with common.database_errors(db):
            return func(conf, store)
    finally:
        store.db.dispose()


def db_sync(conf: cfg.ConfigOpts, store: Store) -> int:
    """The only command that creates a database: the one the operator named."""
    migration.upgrade(store.db.engine)
    print(f"database at revision {migration.current(store.db.engine)}")
    return 0


def db_version(conf: cfg.ConfigOpts, store: Store) -> int:
    print(migration.current(store.db.engine) or "empty (run 'tracker-manage db sync')")
    return 0


def node_set_cmd(conf: cfg.ConfigOpts, store: Store) -> int:
    args = conf.command
    inventory = NodeInventory(**{name: getattr(args, name) for name, _ in _INVENTORY_ARGS})
    view = store.set_node(args.compute_host, args.hypervisor_hostname, inventory)
    print(json.dumps(view, indent=2, sort_keys=True))
    return 0


def node_list(conf: cfg.ConfigOpts, store: Store) -> int:
    print(render(store.node_views(), store.project_usage(), "table"))
    return 0


def flavor_set_cmd(conf: cfg.ConfigOpts, store: Store) -> int:
    args = conf.command
    record = {name: getattr(args, name) for name, _ in _FLAVOR_ARGS}
    record.update(
        flavorid=args.flavorid, name=args.name, swap=args.swap or 0, ephemeral_gb=args.ephemeral_gb or 0
    )
    store.set_flavors([flavors.from_record(record)])
    return flavor_list(conf, store)


def flavor_import_cmd(conf: cfg.ConfigOpts, store: Store) -> int:
    with common.open_input(conf.command.file) as handle:
        records = json.load(handle)
    store.set_flavors([flavors.from_record(record) for record in records])
    print(f"imported {len(records)} flavors")
    return 0


def flavor_list(conf: cfg.ConfigOpts, store: Store) -> int:
    for f in store.flavors():
        print(
            f"{f.flavorid:<20}{f.name:<24}vcpus={f.vcpus} memory_mb={f.memory_mb} root_gb={f.root_gb} "
            f"ephemeral_gb={f.ephemeral_gb} swap={f.swap}"
        )
    return 0


def replay_cmd(conf: cfg.ConfigOpts, store: Store) -> int:
    path = conf.command.file
    with sys.stdin if path == "-" else common.open_input(path) as lines:
        report = replay.replay(lines, store, conf.nova_notifications.max_message_bytes)
    if conf.command.publish:
        published = Relay(conf, store, threading.Event()).drain()
        report.metrics.incr("outbox_published", published)
    print(json.dumps({"counters": report.metrics.snapshot(), "poison": report.poison}, indent=2))
    return 1 if report.poison else 0


def dead_letter_list(conf: cfg.ConfigOpts, store: Store) -> int:
    letters: list[dict[str, Any]] = []

    def show(message: Any) -> bool:
        letters.append(deadletter.describe(message))
        return False  # leave it in the queue

    deadletter.browse(conf, show, conf.command.limit)
    if conf.command.format == "json":
        print(json.dumps(letters, indent=2))
        return 0
    for letter in letters:
        withheld = ", body withheld" if letter["withheld"] else ""
        print(f"{letter['routing_key']}: {letter['reason']} ({letter['bytes']} bytes{withheld})")
    return 0


def dead_letter_replay(conf: cfg.ConfigOpts, store: Store) -> int:
    outcomes: dict[str, int] = {}

    def reapply(message: Any) -> bool:
        try:
            decision = decide.decide(message.body, conf.nova_notifications.max_message_bytes)
            if decision.host_event is not None:
                store.apply_host_event(decision.host_event)
            status = store.apply(decision.event).status if decision.event else decision.kind
        except Exception as error:  # noqa: BLE001 - one failing letter must not stop the rest
            print(f"still failing: {type(error).__name__}: {str(error)[:200]}", file=sys.stderr)
            status = "failed"
        outcomes[status] = outcomes.get(status, 0) + 1
        return status not in (decide.POISON, "failed")

    settled = deadletter.browse(conf, reapply, conf.command.limit)
    print(json.dumps({"settled": settled, "outcomes": outcomes}, sort_keys=True))
    return 1 if outcomes.get(decide.POISON) or outcomes.get("failed") else 0


def purge_cmd(conf: cfg.ConfigOpts, store: Store) -> int:
    days = conf.command.older_than_days
    cutoff = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(days=days)
    print(f"purged {store.purge_tombstones(cutoff)} instance tombstones older than {days:g} days")
    return 0


def audit(conf: cfg.ConfigOpts, store: Store) -> int:
    problems = store.audit()
    for problem in problems:
        print(problem)
    print("audit: ok" if not problems else f"audit: {len(problems)} node(s) disagree")
    return 1 if problems else 0


def announce_cmd(conf: cfg.ConfigOpts, store: Store) -> int:
    payloads = store.node_payloads(conf.command.node)
    if conf.command.node and not payloads:
        print("no node has that host or nodename", file=sys.stderr)
        return 1
    connection = amqp.connect(conf, confirm_each=False)
    try:
        connection.ensure_connection(max_retries=3)
        CapacityPublisher(connection, conf).publish(payloads)
    finally:
        amqp.close(connection)
    print(f"announced {len(payloads)} node(s)")
    return 0


def quota_set_cmd(conf: cfg.ConfigOpts, store: Store) -> int:
    args = conf.command
    limits = {name: getattr(args, name) for name in QUOTA_RESOURCES if getattr(args, name) is not None}
    if not limits:
        print("nothing to set: give --instances, --vcpus, --memory-mb or --local-gb", file=sys.stderr)
        return 2
    for crossed in store.set_quota(args.project_id, limits):
        print(
            f"warning: project {escape.text(args.project_id)} already uses {crossed['used']} "
            f"{crossed['resource']}, over its new limit of {crossed['limit']} "
            "(alert queued: the worker publishes it)",
            file=sys.stderr,
        )
    return quota_list(conf, store)


def quota_list(conf: cfg.ConfigOpts, store: Store) -> int:
    defaults, overrides = store.quota_limits()
    print(json.dumps({"defaults": defaults, "projects": overrides}, indent=2, sort_keys=True))
    return 0
