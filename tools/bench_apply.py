"""Events/s of Store.apply_batch replaying cloudsim's lifecycle mix, per backend and batch size.

    tools/bench apply [--instances 300] [--hosts 20] [--backends sqlite,postgresql] [--batches 1,100,500]

One simulated cloud; each (backend, batch size) replays all its instance
events into an empty database of its own, timing only ``apply_batch``. The
run ends with a correctness line: every run's final usage against the
simulator's oracle.
"""

import argparse
import random
import sys
import time
from typing import Any

import oracle_check
from cloudsim import Cloud
from scratch_db import scratch_database

from tracker import conf as tracker_conf
from tracker.bus import decide
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database
from tracker.events.model import InstanceEvent


def instance_events(messages: list[dict[str, Any]]) -> list[InstanceEvent]:
    decisions = (decide.decide(message["body"], 1 << 20) for message in messages)
    return [decision.event for decision in decisions if decision.event is not None]


def replay(url: str, cloud: Cloud, events: list[InstanceEvent], batch: int) -> tuple[float, list[str]]:
    """Events/s, and where the final usage differs from the oracle."""
    conf = tracker_conf.load([], default_config_files=[])
    conf.set_override("connection", url, group="database")
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    store = Store(db, conf)
    oracle_check.register(store, cloud.inventory(), cloud.flavors())
    start = time.perf_counter()
    for first in range(0, len(events), batch):
        store.apply_batch(events[first : first + batch])
    elapsed = time.perf_counter() - start
    problems = oracle_check.differences(cloud.oracle(), store.node_views(), store.project_usage())
    problems += store.audit()
    db.dispose()
    return len(events) / elapsed, problems


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="tools/bench apply", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--batches", default="1,100,500")
    args = parser.parse_args()
    cloud = Cloud(args.seed, hosts=args.hosts)
    events = instance_events(cloud.run(args.instances, random.Random(args.seed)))
    backends, batches = args.backends.split(","), [int(size) for size in args.batches.split(",")]
    print(f"{len(events)} instance events of {args.instances} instances on {args.hosts} hosts")
    print(f"{'events/s':>12}" + "".join(f"{f'batch {size}':>12}" for size in batches))
    problems: list[str] = []
    for backend in backends:
        rates = []
        for size in batches:
            with scratch_database(backend) as url:
                rate, wrong = replay(url, cloud, events, size)
            rates.append(rate)
            problems += [f"{backend} batch {size}: {problem}" for problem in wrong]
        print(f"{backend:>12}" + "".join(f"{rate:>12.0f}" for rate in rates))
    for problem in problems:
        print(problem)
    runs = len(backends) * len(batches)
    verdict = "every run MATCHES" if not problems else f"{len(problems)} DIFFERENCES from"
    print(f"correctness: {verdict} the simulator's oracle ({runs} runs, audit included)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
