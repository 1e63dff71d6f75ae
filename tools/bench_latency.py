"""Latency from Nova's publish to the tracker's capacity notification, at a steady rate.

Method. The lifecycle feed is published at a paced rate (half the rate the
tracker reached on it with PostgreSQL, unless told otherwise), on an absolute
schedule, into a tracker worker that starts with an empty queue. One
message in ``every`` (20) is followed by a *probe*: ``instance.create.end``
of a new instance on a node of its own, which no other event touches. The
probes ride the same queue, lanes, batches, transactions and relay as the
mix around them, so they see the load the mix creates.

Matching a notification to the event that caused it is then exact, with no
knowledge of how the tracker batches: a probe node starts with no instance
(its registration's notification is drained before the run), and the only
event that ever gives it one is its probe; so the first capacity
notification for that node with ``running_vms >= 1`` is the one the probe
caused, whatever generation it carries (the tracker bumps generations per
batch, and its relay coalesces per node). The publisher notes
``time.monotonic()`` just before publishing each probe; a plain kombu
subscriber, in a process of its own so that the publisher's GIL cannot delay
it, bound to the tracker's capacity exchange like a scheduler's listener,
notes ``time.monotonic()`` on arrival (one clock for all processes on a Linux
host). Latency = arrival − publish, per probe; p50 and p99 are nearest-rank
percentiles over all probes. A probe that never shows up is a correctness
failure, not a missing sample.

Why not match the mix's own events: most of them change no usage, a
notification is per node and batch rather than per event, and usage values
repeat, so which event a notification reflects is ambiguous.
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
from typing import IO, Any

import bench_tracker
import kombu
from bench_broker import Child, declare_queue, entities, logged_warnings, publish_paced, queue_depth
from bench_consumers import BROKER
from bench_feeds import PROBE_HOST_PREFIX, Feed, interleave, probe_feed
from scratch_db import scratch_database

CAPACITY_ROUTING_KEY = "capacity_notifications.info"
_SUBSCRIBER_GRACE = 15.0


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _probe_hosts(probes: Feed) -> dict[str, str]:
    """Body of each probe message → its node's host."""
    return {
        body: json.loads(json.loads(body)["oslo.message"])["payload"]["nova_object.data"]["host"]
        for _, body in probes.messages
    }


def _declare_subscriber(connection: kombu.Connection, capacity_exchange: str, queue: str) -> None:
    """A scheduler's queue on the tracker's capacity exchange, declared as the tracker declares it."""
    exchange = kombu.Exchange(capacity_exchange, type="topic", durable=False, auto_delete=False)
    kombu.Queue(queue, exchange, routing_key=CAPACITY_ROUTING_KEY, durable=False, auto_delete=False)(
        connection.default_channel
    ).declare()


def measure(feed: Feed, rate: float, every: int = 20) -> dict[str, Any]:
    """Probe latencies of the tracker on PostgreSQL while ``feed`` arrives at ``rate`` messages/s."""
    probes = probe_feed(math.ceil(len(feed) / every))
    mixed = interleave(feed, probes, every)
    hosts = _probe_hosts(probes)
    sent: dict[str, float] = {}
    probe_spec = {"probe_prefix": PROBE_HOST_PREFIX, "expected": len(probes.messages)}

    def note(body: str, at: float) -> None:
        host = hosts.get(body)
        if host is not None:
            sent[host] = at

    with (
        scratch_database("postgresql") as url,
        entities() as names,
        kombu.Connection(BROKER) as connection,
        tempfile.TemporaryFile("w+") as log,
    ):
        bench_tracker.prepare(url, mixed)
        declare_queue(connection, names, durable=True)
        _declare_subscriber(connection, names.capacity, names.subscriber)
        children: list[Child] = []
        try:
            subscriber = _start(children, {"kind": "capacity", "queue": names.subscriber} | probe_spec, log)
            tracker = _start(
                children,
                {"kind": "tracker", "overrides": bench_tracker.overrides(url, names)}
                | {"expected": len(mixed)},
                log,
            )
            seconds = publish_paced(connection, names, mixed.messages, rate, note)
            result = tracker.finish(120)
            arrivals = _arrivals(subscriber)
        finally:
            for child in children:
                child.stop()
        problems = bench_tracker.verdict(url, mixed, result, queue_depth(connection, names.queue))
        warnings = logged_warnings(log)
    checked = bench_tracker.feed_size(mixed.oracle)
    return _figures(rate, len(mixed) / seconds, sent, arrivals, result, problems) | {
        "log": warnings,
        "checked": checked,
    }


def _start(children: list[Child], spec: dict[str, Any], log: IO[str]) -> Child:
    """A child attached to its queue before anything is published."""
    child = Child(spec, log)
    children.append(child)
    child.expect("consuming")
    return child


def _arrivals(subscriber: Child) -> dict[str, list[float]]:
    """The subscriber stops by itself once every probe arrived; a late one is given a grace period."""
    try:
        subscriber.process.wait(_SUBSCRIBER_GRACE)
    except subprocess.TimeoutExpired:
        subscriber.stop()
    arrivals: dict[str, list[float]] = subscriber.finish(30)["arrivals"]
    return arrivals


def _figures(
    rate: float,
    achieved: float,
    sent: dict[str, float],
    arrivals: dict[str, list[float]],
    result: dict[str, Any],
    problems: list[str],
) -> dict[str, Any]:
    latencies = [arrivals[host][0] - at for host, at in sent.items() if host in arrivals]
    missing = sorted(set(sent) - set(arrivals))
    problems = problems + [
        f"probe {host}: no capacity notification showed its instance" for host in missing[:5]
    ]
    if len(missing) > 5:
        problems.append(f"... and {len(missing) - 5} more probes without a notification")
    return {
        "target_rate": round(rate),
        "achieved_rate": round(achieved),
        "probes": len(sent),
        "matched": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "peak_rss_mib": result.get("peak_rss_mib"),
        "problems": problems,
    }
