"""A scheduler's view of 10 000 nodes: does it keep up with the tracker, and how fast is a fit query?

    tools/bench view [--nodes 10000] [--generations 5] [--queries 2000]

(1) Keeping up. A scheduler process (bench_consumers ``view``: a stock
oslo.messaging listener, threading executor, feeding CapacityView) listens on
a pool of its own. The tracker's own publisher (CapacityPublisher, publisher
confirms, as the relay publishes) then sends ``--generations`` updates of
every node, generation by generation, as fast as it can: the tracker's full
publish rate, which no run of the worker exceeds (its relay publishes at
most one notification per node and batch). The view keeps up if it finished
within a second of the publisher and ends at the newest generation of every
node. Times are ``time.monotonic()`` in both processes (one clock on Linux).

(2) Fit query latency. In this process, a view loaded with ``--nodes``
nodes (random usage, a tenth disabled, four zones, pending claims on some)
answers ``--queries`` fit queries, then as many picks (fit + claim): p50 and
p99 in milliseconds. And ``offer()`` alone, updates per second.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from typing import Any

from bench_broker import Child, entities
from bench_consumers import RABBIT
from bench_latency import percentile

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


def keeping_up(nodes: int, generations: int, log: Any) -> dict[str, Any]:
    rng = random.Random(10)
    updates = [node_payload(i, g, rng) for g in range(1, generations + 1) for i in range(nodes)]
    hosts = [f"cmp{i:05d}" for i in range(nodes)]
    with entities() as names:
        spec = {
            "kind": "view",
            "exchange": names.capacity,
            "topic": TOPIC,
            "queue": names.subscriber,
            "expected": len(updates),
            "generations": generations,
            "hosts": hosts,
            "timeout": 600,
        }
        child = Child(spec, log)
        child.expect("consuming")
        conf = tracker_conf.load([], default_config_files=[])
        conf.set_override("transport_url", RABBIT)
        conf.set_override("exchange", names.capacity, group="capacity_notifications")
        with amqp.connect(conf, confirm_each=False) as connection:  # as the relay connects
            publisher = CapacityPublisher(connection, conf)
            started = time.monotonic()
            publisher.publish(updates)
            published = time.monotonic()
        result = child.finish(120)
    seconds = published - started
    view_seconds = result["last_at"] - result["first_at"]
    return {
        "messages": len(updates),
        "publish_per_s": round(len(updates) / seconds),
        "view_per_s": round(len(updates) / view_seconds),
        "lag_at_end_s": round(result["last_at"] - published, 3),
        "nodes_in_view": result["nodes"],
        "stale_nodes": result["stale_nodes"],
        "finished": result["finished"],
        "view_peak_rss_mib": result["peak_rss_mib"],
    }


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
    parser.add_argument("--generations", type=int, default=5)
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
            up = keeping_up(args.nodes, args.generations, log)
        except Exception:
            log.seek(0)
            sys.stderr.write(log.read())
            raise
    ok = up["finished"] and up["stale_nodes"] == 0 and up["lag_at_end_s"] < 1.0
    print(
        f"view of {up['nodes_in_view']:,} nodes, {up['messages']:,} updates: tracker publisher "
        f"{up['publish_per_s']:,} msg/s, view {up['view_per_s']:,} msg/s, behind by {up['lag_at_end_s']} s "
        f"when the publisher finished, {up['stale_nodes']} node(s) not at their newest generation, "
        f"peak RSS {up['view_peak_rss_mib']} MiB: {'keeps up' if ok else 'FALLS BEHIND'}",
        flush=True,
    )
    print(json.dumps({"query": latency, "keeping_up": up}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
