"""A scheduler's view of 10 000 nodes: does it keep up with the tracker, and how fast is a fit query?

    tools/bench view [--nodes 10000] [--feed audit|lifecycle] [--scale 1] [--generations 3]
                     [--queries 2000]

(1) Fit query latency. In this process, a view loaded with ``--nodes`` nodes
(random usage, a tenth disabled, four zones) answers ``--queries`` fit
queries, in any zone and in one, then as many picks (fit + claim, so the
claims pile up): p50 and p99 in milliseconds; and ``offer()`` alone.

(2) With the tracker. A feed over ``--nodes`` nodes is published whole (audit:
``instance.exists`` of 10 instances per node, every one a usage change, so
about one notification per event: the most the tracker publishes; or
cloudsim's lifecycle mix, ~20 000 messages × ``--scale``); the tracker worker
(default configuration, PostgreSQL, its periodic announce included) then
drains it at full speed while a scheduler process listens: oslo.messaging's
batch listener feeding CapacityView (bench_consumers ``view``). The view keeps
up if it handled its last message within a second of the tracker finishing,
and holds every node's newest generation (compared with the database).
Times are ``time.monotonic()`` in every process (one clock on Linux). On a
shared machine CPU per message is the steadier figure.

(3) Headroom. The tracker's publisher (as the relay publishes) sends
``--generations`` updates of every node flat out, far faster than the worker
ever feeds it, to the view behind the stock listener, then the batch one.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from typing import Any

import bench_tracker
import kombu
import sqlalchemy as sa
from bench_broker import Child, declare_queue, entities, publish_all, queue_depth
from bench_consumers import BROKER, RABBIT
from bench_feeds import Feed, audit_feed, lifecycle_feed
from bench_latency import percentile
from scratch_db import scratch_database

from tracker import conf as tracker_conf
from tracker.bus import amqp
from tracker.bus.publisher import CapacityPublisher
from tracker.client.view import CapacityView, Request
from tracker.db import capacity
from tracker.db.hosts import HostFacts
from tracker.db.nodes import NodeRecord

TOPIC = "capacity_notifications"
ZONES = ("az1", "az2", "az3", "az4")
FLAVOR = Request(vcpus=4, memory_mb=8192, disk_gb=80)


def node_payload(index: int, generation: int, rng: random.Random) -> dict[str, Any]:
    host = f"cmp{index:05d}"
    vcpus_used = rng.randrange(0, 200)
    node = NodeRecord(
        id=index + 1,
        uuid=f"00000000-0000-4000-8000-{index:012d}",
        host=host,
        hypervisor_hostname=host,
        placeholder=False,
        vcpus=48,
        memory_mb=393216,
        local_gb=3600,
        reserved_vcpus=0,
        reserved_memory_mb=512,
        reserved_local_gb=0,
        cpu_allocation_ratio=4.0,
        ram_allocation_ratio=1.0,
        disk_allocation_ratio=1.0,
        vcpus_used=vcpus_used,
        memory_mb_used=rng.randrange(0, 393216),
        local_gb_used=rng.randrange(0, 3600),
        running_vms=vcpus_used // 4,
        generation=generation,
    )
    facts = HostFacts(
        disabled=index % 10 == 0,
        availability_zone=ZONES[index % len(ZONES)],
        aggregates=((f"agg-{index % 16}", f"aggregate-{index % 16}"),),
    )
    return capacity.payload(node, facts, capacity.now_text())


def with_the_tracker(feed: Feed, log: Any) -> dict[str, Any]:
    """The tracker worker drains ``feed`` at full speed, with its default configuration (the
    periodic announce included), while a scheduler's view listens; then the view must hold
    every node's newest generation."""
    with entities() as names, scratch_database("postgresql") as url:
        bench_tracker.prepare(url, feed)
        view = Child(_view_spec(names, batch=True), log)
        view.expect("consuming")
        with kombu.Connection(BROKER) as connection:
            declare_queue(connection, names, durable=True)
            publish_all(connection, names, feed.messages)
        tracker = Child(
            {"kind": "tracker", "overrides": bench_tracker.overrides(url, names), "expected": len(feed)}, log
        )
        tracker.expect("consuming")
        ran = tracker.finish(600)
        with kombu.Connection(BROKER) as connection:
            wait_for_empty(connection, names.subscriber, 60.0)
        view.stop()
        seen = view.finish(60)
        stored = _generations(url)
    stale = sum(1 for host, generation in stored.items() if seen["generations"].get(host) != generation)
    return {
        "events": len(feed),
        "tracker_events_per_s": round(len(feed) / ran["seconds"]),
        "notifications": seen["received"],
        "tracker_notifications_per_s": round(seen["received"] / ran["seconds"]),
        "view_behind_s": round(seen["last_at"] - ran["finished_at"], 3),
        "nodes": len(stored),
        "stale_nodes": stale,
        "view_cpu_us_per_message": round(seen["cpu_seconds"] / max(1, seen["received"]) * 1e6),
        "tracker_cpu_us_per_event": round(ran["cpu_seconds"] / len(feed) * 1e6),
        "view_peak_rss_mib": seen["peak_rss_mib"],
    }


def headroom(nodes: int, generations: int, batch: bool, log: Any) -> dict[str, Any]:
    """The tracker's publisher flat out (far above what the worker feeds it): ``generations``
    updates of every node, as the relay publishes them; how fast the view takes them."""
    rng = random.Random(10)
    updates = [node_payload(i, g, rng) for g in range(1, generations + 1) for i in range(nodes)]
    with entities() as names:
        view = Child({**_view_spec(names, batch), "expected": len(updates)}, log)
        view.expect("consuming")
        conf = tracker_conf.load([], default_config_files=[])
        conf.set_override("transport_url", RABBIT)
        conf.set_override("exchange", names.capacity, group="capacity_notifications")
        with amqp.connect(conf, confirm_each=False) as connection:  # as the relay connects
            started = time.monotonic()
            CapacityPublisher(connection, conf).publish(updates)
            published = time.monotonic()
        seen = view.finish(300)
    newest = sum(1 for generation in seen["generations"].values() if generation == generations)
    return {
        "listener": "batch" if batch else "single",
        "messages": len(updates),
        "publisher_per_s": round(len(updates) / (published - started)),
        "view_per_s": round(len(updates) / (seen["last_at"] - seen["first_at"])),
        "view_cpu_us_per_message": round(seen["cpu_seconds"] / len(updates) * 1e6),
        "at_newest": newest,
    }


def _view_spec(names: Any, batch: bool) -> dict[str, Any]:
    return {
        "kind": "view",
        "exchange": names.capacity,
        "topic": TOPIC,
        "queue": names.subscriber,
        "batch": batch,
    }


def wait_for_empty(connection: kombu.Connection, queue: str, timeout: float) -> None:
    """Until the queue has been empty twice in a row (the listener took everything)."""
    deadline = time.monotonic() + timeout
    empty = 0
    while empty < 2 and time.monotonic() < deadline:
        empty = empty + 1 if queue_depth(connection, queue) == 0 else 0
        time.sleep(0.2)


def _generations(url: str) -> dict[str, int]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT host, generation FROM compute_nodes")
            return {host: generation for host, generation in rows}
    finally:
        engine.dispose()


def query_latency(nodes: int, queries: int) -> dict[str, Any]:
    rng = random.Random(11)
    payloads = [node_payload(i, 1, rng) for i in range(nodes)]
    view = CapacityView()
    started = time.perf_counter()
    view.load(payloads)
    updates = [node_payload(i, 2, rng) for i in range(nodes)]
    offered = time.perf_counter()
    view.load(updates)
    offer_per_s = nodes / (time.perf_counter() - offered)
    load_seconds = offered - started

    def timed(call: Any) -> list[float]:
        times = []
        for _ in range(queries):
            before = time.perf_counter()
            call()
            times.append((time.perf_counter() - before) * 1000)
        return times

    fits = timed(lambda: view.fits(FLAVOR))
    in_zone = timed(lambda: view.fits(FLAVOR, availability_zone="az2"))
    picks = timed(lambda: view.pick(FLAVOR))
    return {
        "nodes": nodes,
        "fitting_nodes": len(view.fits(FLAVOR)),
        "load_s": round(load_seconds, 3),
        "offer_per_s": round(offer_per_s),
        "fit_p50_ms": round(percentile(fits, 0.5), 2),
        "fit_p99_ms": round(percentile(fits, 0.99), 2),
        "fit_in_zone_p50_ms": round(percentile(in_zone, 0.5), 2),
        "pick_p50_ms": round(percentile(picks, 0.5), 2),
        "pick_p99_ms": round(percentile(picks, 0.99), 2),
        "pending_claims": view.pending_claims(),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument(
        "--feed",
        choices=["audit", "lifecycle"],
        default="audit",
        help="audit: instance.exists of 10 instances per node, each a usage change (the most "
        "notifications per event); lifecycle: cloudsim's mix, ~20 000 messages x --scale",
    )
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--generations", type=int, default=3, help="updates per node, flat out")
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args(argv)
    latency = query_latency(args.nodes, args.queries)
    print(
        f"fit query over {latency['nodes']:,} nodes ({latency['fitting_nodes']:,} fit): "
        f"p50 {latency['fit_p50_ms']} ms, p99 {latency['fit_p99_ms']} ms; in one zone p50 "
        f"{latency['fit_in_zone_p50_ms']} ms; pick (fit + claim) p50 {latency['pick_p50_ms']} ms, "
        f"p99 {latency['pick_p99_ms']} ms; offer() {latency['offer_per_s']:,}/s",
        flush=True,
    )
    with tempfile.TemporaryFile("w+") as log:
        try:
            feed = (
                audit_feed(args.nodes * 10)
                if args.feed == "audit"
                else lifecycle_feed(args.scale, nodes=args.nodes)
            )
            tracked = with_the_tracker(feed, log)
            flat_out = [headroom(args.nodes, args.generations, batch, log) for batch in (False, True)]
        except Exception:
            log.seek(0)
            sys.stderr.write(log.read())
            raise
    ok = tracked["stale_nodes"] == 0 and tracked["view_behind_s"] < 1.0
    print(
        f"with the tracker: {tracked['events']:,} events over {tracked['nodes']:,} nodes at "
        f"{tracked['tracker_events_per_s']:,} events/s gave {tracked['notifications']:,} notifications "
        f"({tracked['tracker_notifications_per_s']:,}/s); the view (batch listener) was "
        f"{tracked['view_behind_s']} s behind when the tracker finished, {tracked['stale_nodes']} node(s) "
        f"not at their newest generation; CPU per message {tracked['view_cpu_us_per_message']} us "
        f"(tracker per event {tracked['tracker_cpu_us_per_event']} us): "
        f"{'keeps up' if ok else 'FALLS BEHIND'}",
        flush=True,
    )
    for run in flat_out:
        print(
            f"flat out, {run['listener']} listener: publisher {run['publisher_per_s']:,} msg/s, view "
            f"{run['view_per_s']:,} msg/s, {run['view_cpu_us_per_message']} us CPU per message, "
            f"{run['at_newest']:,} nodes at their newest generation",
            flush=True,
        )
    print(json.dumps({"query": latency, "with_the_tracker": tracked, "flat_out": flat_out}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
