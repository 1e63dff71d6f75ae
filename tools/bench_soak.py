"""Soak: Nova's hourly audit, period after period, into one tracker worker. Does its memory stay flat?

    tools/bench soak [--instances 100000] [--periods 10] [--seed 42] [--max-depth 20000] [--workers 1]

Feed. ``instance.exists`` of --instances instances over a tenth as many nodes
(bench_feeds' audit feed) is period 0; each later period is Nova's next hourly
audit of the same instances (bench_feeds.resent: a new message id, the
timestamp one hour later per period), derived from period 0 one message at a
time as it is published: the bench never holds more than period 0. The
defaults are the issue's: 1 000 000 events across 10 000 nodes. The tracker
must take every period for new events: period 0 all 'applied', each later
one all 'unchanged' (the instances did not change), none a 'duplicate'.

Run. The tracker worker (bench_consumers ``tracker``, default configuration,
a PostgreSQL scratch database prepared as bench_tracker does; --workers N:
N processes under its Supervisor) attaches before anything is published.
Each period is published in chunks while the worker consumes, the queue
never holding more than about --max-depth ready messages, so that RabbitMQ's
memory stays small; the next period starts once the worker received the
whole period and is idle, as each hour's audit follows the last.

Figures. The RSS (VmRSS) of the worker process (of each one, with --workers),
sampled once a second and at the end of each period. Per period: events/s,
CPU µs per event (every worker process), RSS at its end and the highest
sample in it. Then the peak (VmHWM), the RSS growth from the end of period 1
(the first repeat: tables, caches and pools are warm by then) to the end of
the last, and CPU µs per event over the whole run.

Every run must end with exactly the audit oracle's usage per node and per
project, ``Store.audit() == []``, nothing dead-lettered, an empty queue and
the counters above; the exit status is 1 otherwise. Output: a table, then
one JSON line with every figure and the RSS samples.

With [accounting] history_limit at its default (64), 10 periods keep every
event (10 per instance, 1 000 000 rows): compaction is not exercised. A
default run takes about 15 minutes: the worker did 1 000 to 1 500 events/s
with 20 000 instances on the shared 2-core machine (applying period 0 is the
slowest), and building the feed and registering 10 000 nodes take a minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import tempfile
import threading
import time
from typing import Any

import bench_tracker
import kombu
import psutil
from bench_broker import Child, Names, declare_queue, entities, logged_warnings, publish_bounded, queue_depth
from bench_consumers import BROKER, memory_mib
from bench_feeds import Feed, audit_feed, resent
from scratch_db import scratch_database

from tracker.db.apply import APPLIED, UNCHANGED

# The worker's own deadline: whatever the run's size, below this rate it is stuck.
_SLOWEST = 100  # events/s
_SAMPLE_EVERY = 1.0  # seconds


@dataclasses.dataclass
class Period:
    number: int
    seconds: float
    cpu_seconds: float
    rss_mib: list[float]  # each worker process at the end of the period
    highest_mib: float  # the highest sample during the period, any process
    counters: dict[str, int]  # what the worker counted during the period

    def figures(self, events: int) -> dict[str, Any]:
        return {
            "period": self.number,
            "events_per_s": round(events / self.seconds),
            "cpu_us_per_event": round(self.cpu_seconds / events * 1e6),
            "rss_mib": self.rss_mib,
            "highest_mib": self.highest_mib,
            "counters": self.counters,
        }


class Sampler:
    """The worker processes' RSS, once a second in a thread of its own and on demand.

    ``forked``: the workers are the children of the bench_consumers process
    (its Supervisor's), which itself only waits; else that process is the worker.
    """

    def __init__(self, pid: int, forked: bool) -> None:
        self._root = psutil.Process(pid)
        self._forked = forked
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self.samples: list[tuple[float, list[float]]] = []  # (seconds into the run, MiB per process)
        self.peaks: dict[int, float] = {}  # VmHWM per process id, as last read

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(_SAMPLE_EVERY):
            self.sample()

    def _processes(self) -> list[psutil.Process]:
        if not self._forked:
            return [self._root]
        try:
            return sorted(self._root.children(), key=lambda child: child.pid)
        except psutil.NoSuchProcess:  # the run failed: the report will say why
            return []

    def sample(self) -> list[float]:
        """RSS of each worker process now, in MiB; kept with the time."""
        rss = []
        with self._lock:
            for process in self._processes():
                try:
                    memory = memory_mib(process.pid)
                except (OSError, KeyError):  # it exited in between
                    continue
                rss.append(round(memory["VmRSS"], 1))
                self.peaks[process.pid] = round(memory["VmHWM"], 1)
            self.samples.append((round(time.monotonic() - self._started, 1), rss))
        return rss

    def highest_since(self, first: int) -> float:
        """The highest RSS of any process in the samples from index ``first`` on."""
        return max((max(rss, default=0.0) for _, rss in self.samples[first:]), default=0.0)

    def cpu_seconds(self) -> float:
        """User and system time of the worker processes so far, every thread counted."""
        times = self._root.cpu_times()
        total = float(times.user + times.system + times.children_user + times.children_system)
        if self._forked:
            for child in self._root.children():
                try:
                    own = child.cpu_times()
                except psutil.NoSuchProcess:  # exited: its time is in children_user/system
                    continue
                total += own.user + own.system
        return total


def run_periods(
    connection: kombu.Connection,
    names: Names,
    feed: Feed,
    args: argparse.Namespace,
    child: Child,
    sampler: Sampler,
) -> list[Period]:
    """Publish period after period, each once the worker is done with the last."""
    # Reproducible ids (nothing secret), from another stream than audit_feed's: they must differ from
    # period 0's.
    rng = random.Random(f"resent {args.seed}")  # nosec B311
    periods: list[Period] = []
    before: dict[str, int] = {}
    for number in range(args.periods):
        messages = feed.messages if number == 0 else resent(feed.messages, number, rng)
        started, cpu, first = time.monotonic(), sampler.cpu_seconds(), len(sampler.samples)
        publish_bounded(connection, names, messages, args.max_depth)
        counters = child.expect("mark")["metrics"]
        seconds, rss = time.monotonic() - started, sampler.sample()
        delta = {name: count - before.get(name, 0) for name, count in counters.items()}
        period = Period(
            number,
            seconds,
            sampler.cpu_seconds() - cpu,
            rss,
            sampler.highest_since(first),
            {name: count for name, count in delta.items() if count},
        )
        periods.append(period)
        print_period(period, len(feed))
        before = counters
    return periods


def counter_problems(periods: list[Period], size: int) -> list[str]:
    """Period 0 creates every instance; each later period changes none, and is no duplicate."""
    problems = []
    for period in periods:
        status = APPLIED if period.number == 0 else UNCHANGED
        if period.counters.get(status) != size:
            problems.append(f"period {period.number} counted {period.counters}, not {size} {status}")
    return problems


@dataclasses.dataclass
class Soak:
    periods: list[Period]
    sampler: Sampler
    result: dict[str, Any]  # the worker's "done"
    problems: list[str]
    log: list[str]  # what the worker logged at WARNING and above


def soak(args: argparse.Namespace, feed: Feed) -> Soak:
    """The run, and what is wrong with it."""
    total = len(feed) * args.periods
    spec = {
        "kind": "tracker",
        "expected": total,
        "workers": args.workers,
        "marks": [len(feed) * (number + 1) for number in range(args.periods)],
        "timeout": 600 + total / _SLOWEST,
    }
    with (
        scratch_database("postgresql") as url,
        entities() as names,
        kombu.Connection(BROKER) as connection,
        tempfile.TemporaryFile("w+") as log,
    ):
        bench_tracker.prepare(url, feed)
        declare_queue(connection, names, durable=True)  # as tracker.bus.amqp.notification_queue
        child = Child(spec | {"overrides": bench_tracker.overrides(url, names)}, log)
        try:
            child.expect("consuming")
            with Sampler(child.process.pid, forked=args.workers > 1) as sampler:
                periods = run_periods(connection, names, feed, args, child, sampler)
            result = child.finish(120)
        finally:
            child.stop()
        problems = bench_tracker.verdict(url, feed, result, queue_depth(connection, names.queue), sent=total)
        problems += counter_problems(periods, len(feed))
        return Soak(periods, sampler, result, problems, logged_warnings(log))


def print_period(period: Period, events: int) -> None:
    figures = period.figures(events)
    rss = "/".join(f"{mib:.1f}" for mib in period.rss_mib)
    counters = ", ".join(f"{name} {count}" for name, count in period.counters.items() if name != "received")
    print(
        f"{period.number:>6}{figures['events_per_s']:>11,}{figures['cpu_us_per_event']:>11}"
        f"{rss:>16}{period.highest_mib:>9.1f}  {counters}",
        flush=True,
    )


def growth(periods: list[Period]) -> dict[str, float]:
    """RSS at the end of the last period against the end of period 1, the largest process's."""
    first, last = max(periods[1].rss_mib), max(periods[-1].rss_mib)
    return {
        "from_mib": first,
        "to_mib": last,
        "mib": round(last - first, 1),
        "percent": round((last / first - 1) * 100, 1),
    }


def summary(run: Soak, feed: Feed) -> dict[str, Any]:
    """The run's figures, printed; returned for the JSON line."""
    events = len(feed) * len(run.periods)
    grew = growth(run.periods)
    seconds = sum(period.seconds for period in run.periods)
    cpu_us = run.result["cpu_seconds"] / events * 1e6
    print(
        f"RSS growth from the end of period 1 to the end of period {run.periods[-1].number}: "
        f"{grew['mib']:+.1f} MiB ({grew['percent']:+.1f}%), "
        f"{grew['from_mib']:.1f} -> {grew['to_mib']:.1f} MiB"
    )
    each = "/".join(f"{mib:.1f}" for mib in run.sampler.peaks.values())
    print(
        f"peak RSS (VmHWM) {run.result['peak_rss_mib']:.1f} MiB"
        + (f" (each worker process: {each})" if len(run.sampler.peaks) > 1 else "")
        + f"; {events / seconds:,.0f} events/s and {cpu_us:.0f} µs CPU per event over {seconds:.0f}s"
    )
    for line in run.log[:3]:
        print(f"log: {line}")
    print(f"correctness: {bench_tracker.verdict_text(run.problems, bench_tracker.feed_size(feed.oracle))}")
    return {
        "instances": len(feed),
        "nodes": len(feed.oracle["nodes"]),
        "events": events,
        "periods": [period.figures(len(feed)) for period in run.periods],
        "growth": grew,
        "peak_rss_mib": run.result["peak_rss_mib"],
        "peak_rss_mib_each": list(run.sampler.peaks.values()),
        "events_per_s": round(events / seconds),
        "cpu_us_per_event": round(cpu_us),
        "correct": not run.problems,
        "samples": run.sampler.samples,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tools/bench soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=100_000, help="instances audited each period")
    parser.add_argument("--periods", type=int, default=10, help="hourly audits, at least 3")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-depth", type=int, default=20_000, help="ready messages in the queue, at most")
    parser.add_argument("--workers", type=int, default=1, help="[worker] workers: processes consuming")
    args = parser.parse_args(argv)
    if args.periods < 3:
        parser.error("--periods must be at least 3: growth is measured from the end of period 1 on")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    load = [os.getloadavg()[0]]
    started = time.perf_counter()
    feed = audit_feed(args.instances, args.seed)
    built = time.perf_counter() - started
    print(
        f"soak: {feed.description}, {args.periods} periods: {len(feed) * args.periods} events; "
        f"{args.workers} worker process(es), PostgreSQL; period 0 built in {built:.0f}s",
        flush=True,
    )
    print(f"{'period':>6}{'events/s':>11}{'CPU µs/ev':>11}{'RSS MiB at end':>16}{'highest':>9}  counters")
    run = soak(args, feed)
    load.append(os.getloadavg()[0])
    figures = summary(run, feed)
    print(f"1-minute load average: {load[0]:.2f} at start, {load[1]:.2f} at end, on {os.cpu_count()} CPUs")
    print(json.dumps(figures | {"workers": args.workers, "loadavg": load}))
    return 1 if run.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
