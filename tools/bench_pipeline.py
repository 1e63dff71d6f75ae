"""The tracker's benchmark: the whole pipeline against the consumers it must keep up with.

    tools/bench [--scale 1] [--audit-instances 20000] [--consumers kombu,oslo,postgresql,sqlite]
                [--feeds lifecycle,audit] [--probe-every 20] [--latency-rate N | --no-latency]
    tools/bench apply --help     the per-backend Store.apply_batch micro-benchmark

On the local RabbitMQ, each feed is published whole into a queue of its own,
then consumed by, in turn:

  (a) a no-op kombu consumer, prefetch 1000, one ack per message
  (b) a no-op oslo.messaging notification listener (threading executor)
  (c) the tracker worker, default configuration, on PostgreSQL
  (c2) the same with [worker] workers = 2 and lanes = 1: two processes
       under the worker's supervisor, the scale-out configuration
  (d) the tracker worker, default configuration, on a SQLite file

Each consumer runs alone in a fresh process (see bench_consumers), which
gives its peak RSS. Feeds (see bench_feeds):

  lifecycle  cloudsim's lifecycle mix over 1 000 nodes, ~20 000 messages × --scale
  audit      instance.exists of --audit-instances instances over a tenth as many nodes
             (--audit-instances 100000: the issue's 100 000 over 10 000 nodes)

Then the latency from Nova's publish to the tracker's capacity notification,
on PostgreSQL, with the lifecycle feed paced at half the rate (c) reached on
it, or at --latency-rate (see bench_latency). A default run takes 2 to 3
minutes.

Every tracker run must end with exactly the oracle's usage per node and per
project, ``Store.audit() == []``, nothing dead-lettered and an empty queue;
the exit status is 1 if any run fails that. On a shared 2-core machine
absolute rates are noisy: compare the ratios, measured in the same run.
Output: a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import bench_latency
import bench_tracker
import kombu
from bench_broker import Child, declare_queue, entities, logged_warnings, publish_all, queue_depth
from bench_consumers import BROKER
from bench_feeds import Feed, audit_feed, lifecycle_feed
from scratch_db import scratch_database

CONSUMERS = {
    "kombu": "(a) kombu no-op, prefetch 1000",
    "oslo": "(b) oslo.messaging listener",
    "postgresql": "(c) tracker, PostgreSQL",
    "postgresql-2": "(c2) same, workers 2, lanes 1",
    "sqlite": "(d) tracker, SQLite file",
}
RATIOS = (
    ("(c)/(a)", "postgresql", "kombu"),
    ("(c)/(b)", "postgresql", "oslo"),
    ("(c2)/(a)", "postgresql-2", "kombu"),
    ("(c2)/(b)", "postgresql-2", "oslo"),
    ("(d)/(a)", "sqlite", "kombu"),
)
# consumer: (database, [worker] workers, lanes); more than 2 lanes in all were slower on 2 cores
TRACKERS = {
    "postgresql": ("postgresql", 1, 2),
    "postgresql-2": ("postgresql", 2, 1),
    "sqlite": ("sqlite", 1, 2),
}
OSLO_TOPIC = "versioned_notifications"


@dataclasses.dataclass
class Run:
    consumer: str
    feed: str
    rate: float
    seconds: float
    peak_rss_mib: float
    cpu_us: float  # the consumer process's CPU time per message, microseconds
    problems: list[str]
    log: list[str]

    @property
    def correct(self) -> bool:
        return not self.problems


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def consume(spec: dict[str, Any], timeout: float) -> tuple[dict[str, Any], list[str]]:
    """One child run to its end: its figures, and the warnings it logged."""
    with tempfile.TemporaryFile("w+") as log:
        child = Child(spec, log)
        try:
            child.expect("consuming")
            result = child.finish(timeout)
        finally:
            child.stop()
        return result, logged_warnings(log)


def run_noop(kind: str, feed: Feed) -> Run:
    """(a) or (b): the same messages, consumed and acked, nothing else."""
    with entities() as names, kombu.Connection(BROKER) as connection:
        # (a) gets a queue like the tracker's (durable); (b) the one oslo.messaging declares for
        # a pool with amqp_durable_queues = false, its default.
        declare_queue(connection, names, durable=kind == "kombu")
        publish_all(connection, names, feed.messages)
        spec = {"kind": kind, "queue": names.queue, "expected": len(feed)}
        if kind == "oslo":
            spec |= {"exchange": names.nova, "topic": OSLO_TOPIC}
        result, log = consume(spec, 300)
        depth = queue_depth(connection, names.queue)
    problems = [] if result["received"] >= len(feed) and not depth else [f"{depth} left in the queue"]
    return Run(
        kind,
        feed.name,
        len(feed) / result["seconds"],
        result["seconds"],
        result["peak_rss_mib"],
        cpu_us(result, feed),
        problems,
        log,
    )


def run_tracker(consumer: str, feed: Feed) -> Run:
    """(c), (c2) or (d): the worker consumes the feed; the database is judged against the oracle."""
    backend, workers, lanes = TRACKERS[consumer]
    with scratch_database(backend) as url, entities() as names, kombu.Connection(BROKER) as connection:
        bench_tracker.prepare(url, feed)
        declare_queue(connection, names, durable=True)  # as tracker.bus.amqp.notification_queue
        publish_all(connection, names, feed.messages)
        spec = {
            "kind": "tracker",
            "overrides": bench_tracker.overrides(url, names) | {"worker": {"lanes": lanes}},
            "expected": len(feed),
            "workers": workers,
        }
        result, log = consume(spec, 120)
        problems = bench_tracker.verdict(url, feed, result, queue_depth(connection, names.queue))
    rate = len(feed) / result["seconds"]
    return Run(
        consumer,
        feed.name,
        rate,
        result["seconds"],
        result["peak_rss_mib"],
        cpu_us(result, feed),
        problems,
        log,
    )


def cpu_us(result: dict[str, Any], feed: Feed) -> float:
    return result["cpu_seconds"] / len(feed) * 1e6


def run_one(consumer: str, feed: Feed) -> Run:
    progress(f"  {CONSUMERS[consumer]} on {feed.name} ...")
    run = run_tracker(consumer, feed) if consumer in TRACKERS else run_noop(consumer, feed)
    progress(
        f"    {run.rate:,.0f} events/s in {run.seconds:.1f}s, {run.cpu_us:.0f} µs CPU per event, "
        f"peak RSS {run.peak_rss_mib:.0f} MiB"
    )
    return run


def build_feeds(args: argparse.Namespace) -> list[Feed]:
    builders: dict[str, Callable[[], Feed]] = {
        "lifecycle": lambda: lifecycle_feed(args.scale, args.seed),
        "audit": lambda: audit_feed(args.audit_instances, args.seed),
    }
    feeds = []
    for name in args.feeds:
        started = time.perf_counter()
        feed = builders[name]()
        feeds.append(feed)
        elapsed = time.perf_counter() - started
        progress(f"feed {name}: {feed.description}, {len(feed)} messages (built in {elapsed:.0f}s)")
    return feeds


def ratios(runs: dict[tuple[str, str], Run], feeds: list[Feed]) -> dict[str, dict[str, float]]:
    return {
        feed.name: {
            label: round(runs[(top, feed.name)].rate / runs[(bottom, feed.name)].rate, 3)
            for label, top, bottom in RATIOS
            if (top, feed.name) in runs and (bottom, feed.name) in runs
        }
        for feed in feeds
    }


def latency_rate(args: argparse.Namespace, runs: dict[tuple[str, str], Run]) -> float | None:
    if args.no_latency:
        return None
    if args.latency_rate:
        return float(args.latency_rate)
    measured = runs.get(("postgresql", "lifecycle"))
    return measured.rate / 2 if measured is not None else None


def print_table(feeds: list[Feed], runs: dict[tuple[str, str], Run], consumers: list[str]) -> None:
    print()
    for feed in feeds:
        size = sum(len(body) for _, body in feed.messages) / len(feed) / 1024
        print(f"{feed.name:>9}: {len(feed)} messages of {size:.1f} KiB on average; {feed.description}")
    print()
    header = f"{'consumer':32}" + "".join(
        f"{f'{feed.name} ev/s':>17}{'CPU µs/ev':>11}{'RSS MiB':>9}" for feed in feeds
    )
    print(header + "  correctness")
    for consumer in consumers:
        cells, verdicts = "", []
        for feed in feeds:
            run = runs[(consumer, feed.name)]
            cells += f"{run.rate:>17,.0f}{run.cpu_us:>11.0f}{run.peak_rss_mib:>9.0f}"
            verdicts.append(f"{feed.name} {'OK' if run.correct else 'WRONG'}")
        print(f"{CONSUMERS[consumer]:32}{cells}  {', '.join(verdicts)}")
    print()
    found = ratios(runs, feeds)
    labels = [label for label, _, _ in RATIOS if any(label in found[feed.name] for feed in feeds)]
    if labels:
        print(f"{'ratio, same run':32}" + "".join(f"{feed.name:>17}" for feed in feeds))
        for label in labels:
            cells = "".join(f"{found[feed.name].get(label, float('nan')):>17.3f}" for feed in feeds)
            print(f"{label:32}{cells}")
        print()


def print_latency(latency: dict[str, Any]) -> None:
    print(
        f"latency, Nova publish -> capacity notification, (c) at {latency['target_rate']:,} msg/s "
        f"(achieved {latency['achieved_rate']:,}): p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, "
        f"max {latency['max_ms']} ms over {latency['matched']}/{latency['probes']} probes; "
        f"peak RSS {latency['peak_rss_mib']:.0f} MiB; {'OK' if not latency['problems'] else 'WRONG'}"
    )


def print_correctness(runs: list[Run], latency: dict[str, Any] | None, feeds: list[Feed]) -> bool:
    """One line per tracker run (and per no-op run that lost messages), then the verdict."""
    sizes = {feed.name: bench_tracker.feed_size(feed.oracle) for feed in feeds}
    for run in runs:
        if run.consumer in TRACKERS or not run.correct:
            name = f"{CONSUMERS[run.consumer]} on {run.feed}"
            print(f"correctness {name:42}: {bench_tracker.verdict_text(run.problems, sizes[run.feed])}")
    if latency is not None:
        name = "latency run on lifecycle+probes"
        print(f"correctness {name:42}: {bench_tracker.verdict_text(latency['problems'], latency['checked'])}")
    logged = [(f"{CONSUMERS[run.consumer]} on {run.feed}", run.log) for run in runs]
    for name, lines in [*logged, ("latency run", (latency or {}).get("log", []))]:
        for line in lines[:3]:
            print(f"log of {name}: {line}")
    failed = sum(not run.correct for run in runs) + bool(latency and latency["problems"])
    print(f"correctness: {'FAILED in ' + str(failed) + ' run(s)' if failed else 'every run is right'}")
    return not failed


def report(
    feeds: list[Feed], runs: dict[tuple[str, str], Run], latency: dict[str, Any] | None, ok: bool
) -> dict[str, Any]:
    return {
        "feeds": {feed.name: {"messages": len(feed), "description": feed.description} for feed in feeds},
        "events_per_s": {
            feed.name: {c: round(r.rate) for (c, f), r in runs.items() if f == feed.name} for feed in feeds
        },
        "seconds": {
            feed.name: {c: round(r.seconds, 2) for (c, f), r in runs.items() if f == feed.name}
            for feed in feeds
        },
        "peak_rss_mib": {
            feed.name: {c: r.peak_rss_mib for (c, f), r in runs.items() if f == feed.name} for feed in feeds
        },
        "cpu_us_per_event": {
            feed.name: {c: round(r.cpu_us) for (c, f), r in runs.items() if f == feed.name} for feed in feeds
        },
        "ratios": ratios(runs, feeds),
        "correct": {
            feed.name: {c: r.correct for (c, f), r in runs.items() if f == feed.name} for feed in feeds
        },
        "latency": {k: v for k, v in latency.items() if k not in ("log", "checked")} if latency else None,
        "all_correct": ok,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tools/bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="lifecycle feed of ~20 000 × SCALE messages")
    parser.add_argument("--audit-instances", type=int, default=20_000, help="instances in the audit burst")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--consumers", default=",".join(CONSUMERS), help="subset of %(default)s")
    parser.add_argument("--feeds", default="lifecycle,audit", help="subset of %(default)s")
    parser.add_argument("--probe-every", type=int, default=20, help="one latency probe per N messages")
    parser.add_argument("--latency-rate", type=float, help="messages/s of the latency run (default: (c)/2)")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency run")
    args = parser.parse_args(argv)
    args.consumers = [name for name in CONSUMERS if name in args.consumers.split(",")]
    args.feeds = [name for name in ("lifecycle", "audit") if name in args.feeds.split(",")]
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    load = [os.getloadavg()[0]]
    feeds = build_feeds(args)
    runs: dict[tuple[str, str], Run] = {}
    for feed in feeds:
        progress(f"{feed.name}:")
        for consumer in args.consumers:
            runs[(consumer, feed.name)] = run_one(consumer, feed)
    latency = None
    rate = latency_rate(args, runs)
    lifecycle = next((feed for feed in feeds if feed.name == "lifecycle"), None)
    if rate and lifecycle is not None:
        progress(f"latency: lifecycle feed with probes at {rate:,.0f} msg/s ...")
        latency = bench_latency.measure(lifecycle, rate, args.probe_every)
    load.append(os.getloadavg()[0])
    print_table(feeds, runs, args.consumers)
    if latency:
        print_latency(latency)
    ok = print_correctness(list(runs.values()), latency, feeds)
    print(f"1-minute load average: {load[0]:.2f} at start, {load[1]:.2f} at end, on {os.cpu_count()} CPUs")
    print(json.dumps(report(feeds, runs, latency, ok) | {"loadavg": load, "cpus": os.cpu_count()}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
