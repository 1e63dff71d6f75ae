"""One consumer of a pre-filled queue, alone in a fresh process.

    python -m bench_consumers '{"kind": "kombu", "queue": "...", "expected": 20000}'

Run by bench_pipeline, once per (consumer, feed), so that each run starts
from the same state (no warm caches, no other run's threads) and its peak RSS
(``ru_maxrss``) is that of the consumer alone: the feed was generated and
published by the parent process. Every run times from just before it
connects to the moment the last message is done (acked, or for the tracker:
committed and acked), and imports only what its consumer needs.

Kinds:

- ``kombu``: a no-op kombu consumer, prefetch 1000, one ack per message.
- ``oslo``: a stock oslo.messaging notification listener (threading executor)
  whose endpoint's ``info``/``error`` only count.
- ``tracker``: ``tracker.bus.consumer.Worker`` with its default configuration
  (lanes, prefetch, batch size); only names and the database are set.
- ``view``: the same listener feeding ``tracker.client.view.CapacityView`` (see
  bench_view).
- ``capacity``: a plain kombu subscriber of the tracker's capacity
  notifications that notes when each probe node first shows an instance
  (see bench_latency); it stops once every probe was seen, or on SIGTERM.

Protocol: JSON lines on stdout, ``{"event": "consuming"}`` once the consumer
is attached, then ``{"event": "done", ...}`` with the figures; a ``tracker``
given ``"marks"`` says ``{"event": "mark", ...}`` in between as it reaches each.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import multiprocessing
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import kombu

RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"
BROKER = "amqp://guest:guest@127.0.0.1:5672//"
KOMBU_PREFETCH = 1000
_POLL = 0.005


def say(event: str, **figures: Any) -> None:
    print(json.dumps({"event": event, **figures}), flush=True)


def peak_rss_mib() -> float:
    """This process's own high-water mark: VmHWM. Not its ``ru_maxrss``, which Linux carries
    across fork and exec, so that it would report the parent's size, feed included. With
    worker processes, the largest of them (forked from this small process)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    try:
        return max(memory_mib()["VmHWM"], children)
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_mib(pid: int | str = "self") -> dict[str, float]:
    """A process's resident size now (``VmRSS``) and its high-water mark (``VmHWM``), MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        fields = (line.split() for line in status if line.startswith(("VmRSS:", "VmHWM:")))
        return {name.rstrip(":"): int(kib) / 1024 for name, kib, *_ in fields}


def cpu_seconds() -> float:
    """User and system time of every thread of this process: on a machine other work
    shares, CPU per message is steadier than wall-clock rates."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def run_kombu(spec: dict[str, Any]) -> dict[str, Any]:
    """The floor: what consuming and acking alone costs with kombu."""
    expected, received = spec["expected"], 0

    def on_message(message: Any) -> None:
        nonlocal received
        received += 1
        message.ack()

    start = time.perf_counter()
    with kombu.Connection(BROKER) as connection:
        queue = kombu.Queue(spec["queue"], no_declare=True)
        consumer = kombu.Consumer(
            connection.channel(), queues=[queue], on_message=on_message, prefetch_count=KOMBU_PREFETCH
        )
        with consumer:
            say("consuming")
            while received < expected:
                connection.drain_events(timeout=spec.get("timeout", 120))
        elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "received": received}


class _Counting:
    """A notification endpoint that does nothing but count."""

    def __init__(self, expected: int) -> None:
        self._counter = itertools.count(1)
        self._expected = expected
        self.done = threading.Event()
        self.count = 0

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any) -> None:
        self.count = next(self._counter)  # atomic under the GIL
        if self.count >= self._expected:
            self.done.set()

    error = info


def run_oslo(spec: dict[str, Any]) -> dict[str, Any]:
    """What a stock OpenStack notification consumer manages with oslo.messaging's defaults."""
    endpoint = _Counting(spec["expected"])
    elapsed, finished = _listen(spec, endpoint, endpoint.done)
    return {"seconds": elapsed, "received": endpoint.count, "finished": finished}


def run_view(spec: dict[str, Any]) -> dict[str, Any]:
    """A scheduler: the same stock listener feeding ``tracker.client.view.CapacityView``
    (``batch``: oslo.messaging's batch listener). Runs until ``expected`` messages
    arrived, or until SIGTERM without it; reports every node's generation."""
    from tracker.client.view import BatchEndpoint, CapacityView  # noqa: PLC0415

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    class TimedView(CapacityView):
        def __init__(self) -> None:
            super().__init__()
            self.counting = _Counting(spec.get("expected", 0))
            self.done = self.counting.done if "expected" in spec else stopping
            self.first_at: float | None = None
            self.last_at = 0.0

        def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any) -> None:
            super().info(ctxt, publisher_id, event_type, payload, metadata)
            self.last_at = time.monotonic()  # one clock for every process on a Linux host
            self.first_at = self.first_at or self.last_at
            self.counting.info(ctxt, publisher_id, event_type, payload, metadata)

    view = TimedView()
    endpoint = BatchEndpoint(view) if spec.get("batch") else view
    elapsed, finished = _listen(spec, endpoint, view.done)
    generations = {host: view.get(host, node)["generation"] for host, node in view.nodes()}
    return {
        "seconds": elapsed,
        "received": view.counting.count,
        "finished": finished,
        "generations": generations,
        "dropped": view.dropped,
        "first_at": view.first_at,
        "last_at": view.last_at,
    }


def _listen(spec: dict[str, Any], endpoint: Any, done: threading.Event) -> tuple[float, bool]:
    """A stock notification listener (``batch``: the batch one) with ``endpoint`` until
    ``done``: seconds, finished."""
    import oslo_messaging  # noqa: PLC0415 - only these kinds pay for oslo.messaging (and eventlet)
    from oslo_config import cfg  # noqa: PLC0415

    conf = cfg.ConfigOpts()
    conf([], project="bench", default_config_files=[], default_config_dirs=[])
    start = time.perf_counter()
    transport = oslo_messaging.get_notification_transport(conf, url=RABBIT)
    target = oslo_messaging.Target(exchange=spec["exchange"], topic=spec["topic"])
    if spec.get("batch"):
        listener = oslo_messaging.get_batch_notification_listener(
            transport,
            [target],
            [endpoint],
            executor="threading",
            pool=spec["queue"],
            batch_size=500,
            batch_timeout=0.05,
        )
    else:
        listener = oslo_messaging.get_notification_listener(
            transport, [target], [endpoint], executor="threading", pool=spec["queue"]
        )
    listener.start()
    say("consuming")
    finished = done.wait(spec.get("timeout", 300))
    elapsed = time.perf_counter() - start
    listener.stop()
    listener.wait()
    transport.cleanup()
    return elapsed, finished


def _tracker_worker(spec: dict[str, Any], stopping: threading.Event) -> Any:
    """A ``tracker.bus.consumer.Worker`` as ``tracker-worker`` builds it, and its database."""
    from tracker import conf as tracker_conf  # noqa: PLC0415
    from tracker.bus.consumer import Worker  # noqa: PLC0415
    from tracker.db.api import Store  # noqa: PLC0415
    from tracker.db.engine import Database  # noqa: PLC0415

    conf = tracker_conf.load([], default_config_files=[])
    for group, options in spec["overrides"].items():
        for name, value in options.items():
            conf.set_override(name, value, group=None if group == "DEFAULT" else group)
    db = Database.from_conf(conf)
    return Worker(conf, Store(db, conf, stopping), stopping), db


def run_tracker(spec: dict[str, Any]) -> dict[str, Any]:
    """The tracker worker as ``tracker-worker`` runs it, with its default configuration,
    in this process or, with ``"workers": N``, in N processes under its Supervisor."""
    if spec.get("workers", 1) > 1:
        return _run_tracker_processes(spec)
    stopping = threading.Event()
    worker, db = _tracker_worker(spec, stopping)
    thread = threading.Thread(target=worker.run, name="worker", daemon=True)
    start = time.perf_counter()
    thread.start()
    worker.consuming.wait(30)
    say("consuming")
    finished = _await_feed(spec, lambda: worker.metrics["received"], worker.idle, worker.metrics.snapshot)
    elapsed = time.perf_counter() - start
    stopping.set()
    thread.join(60)
    db.dispose()
    return {
        "seconds": elapsed,
        "received": worker.metrics["received"],
        "finished": finished,
        "finished_at": time.monotonic(),
        "metrics": worker.metrics.snapshot(),
        "published": worker.relay.published,
    }


def _run_tracker_processes(spec: dict[str, Any]) -> dict[str, Any]:
    """N worker processes under ``tracker.cmd.supervisor.Supervisor``, as ``[worker] workers``
    runs them. Done when the processes together received the feed and each is idle: each
    child reports its counters, whether it is idle and what it published in shared memory."""
    from tracker.cmd.supervisor import Supervisor  # noqa: PLC0415
    from tracker.db import apply  # noqa: PLC0415

    count = spec["workers"]
    counters = ("received", "dead_lettered", apply.APPLIED, apply.UNCHANGED, apply.DUPLICATE, apply.STALE)
    fields = ("idle", "published", *counters)
    shared = multiprocessing.Array("q", len(fields) * count, lock=False)
    stopping = threading.Event()

    def child(index: int) -> int:
        told = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: told.set())
        worker, db = _tracker_worker(spec, told)
        thread = threading.Thread(target=worker.run, name="worker", daemon=True)
        thread.start()
        while not told.wait(_POLL):
            counts = worker.metrics.snapshot() | {"idle": worker.idle(), "published": worker.relay.published}
            mine = slice(len(fields) * index, len(fields) * (index + 1))
            shared[mine] = [counts.get(field, 0) for field in fields]
        thread.join(60)
        db.dispose()
        return 0

    supervisor = Supervisor(count, child, stopping, shutdown_timeout=30)
    runner = threading.Thread(target=supervisor.run, name="supervisor", daemon=True)
    start = time.perf_counter()
    runner.start()
    say("consuming")

    def total(field: str) -> int:
        return sum(shared[len(fields) * index + fields.index(field)] for index in range(count))

    def metrics() -> dict[str, int]:
        return {field: total(field) for field in counters}

    done = _await_feed(spec, lambda: total("received"), lambda: total("idle") == count, metrics)
    elapsed = time.perf_counter() - start
    figures = metrics()
    published = total("published")
    stopping.set()
    runner.join(60)
    return {
        "seconds": elapsed,
        "received": figures["received"],
        "finished": done,
        "finished_at": time.monotonic(),
        "metrics": figures,
        "published": published,
    }


def _await_feed(
    spec: dict[str, Any],
    received: Callable[[], int],
    idle: Callable[[], bool],
    metrics: Callable[[], dict[str, int]],
) -> bool:
    """Until the worker received ``expected`` messages and is idle, or ``timeout``; whether it did.

    Idle means idle at two polls in a row with nothing received between: a message
    counted as received is handed to a lane a moment later, and in that moment
    the worker looks idle. With ``"marks"`` (ascending message counts), says
    ``mark`` with the counters each time the worker is idle having received a
    mark's count (bench_soak's audit periods)."""
    marks = collections.deque(spec.get("marks", ()))
    deadline = time.monotonic() + spec.get("timeout", 600)
    idle_at = -1  # the count at the previous poll, if the worker was idle then
    while True:
        count, quiet = received(), idle()
        settled = quiet and count == idle_at
        idle_at = count if quiet else -1
        while settled and marks and count >= marks[0]:
            say("mark", received=marks.popleft(), metrics=metrics())
        if (settled and count >= spec["expected"]) or time.monotonic() >= deadline:
            return settled and count >= spec["expected"]
        time.sleep(_POLL)


def run_capacity(spec: dict[str, Any]) -> dict[str, Any]:
    """When each probe node's first capacity notification showing an instance arrived.

    Times are ``time.monotonic()``: one clock for every process on a Linux host.
    """
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    prefix, expected = spec["probe_prefix"], spec["expected"]
    arrivals: dict[str, list[float]] = {}
    received = 0

    def on_message(message: Any) -> None:
        nonlocal received
        now = time.monotonic()
        received += 1
        payload = json.loads(json.loads(message.body)["oslo.message"])["payload"]
        host = payload["host"]
        if host.startswith(prefix) and payload["running_vms"] >= 1 and host not in arrivals:
            arrivals[host] = [now, payload["generation"]]
        message.ack()

    with kombu.Connection(BROKER) as connection:
        queue = kombu.Queue(spec["queue"], no_declare=True)
        with kombu.Consumer(connection.channel(), queues=[queue], on_message=on_message, prefetch_count=1000):
            say("consuming")
            while len(arrivals) < expected and not stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    connection.drain_events(timeout=0.2)
    return {"received": received, "arrivals": arrivals}


RUNS = {
    "kombu": run_kombu,
    "oslo": run_oslo,
    "view": run_view,
    "tracker": run_tracker,
    "capacity": run_capacity,
}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    before = cpu_seconds()
    result = RUNS[spec["kind"]](spec)
    say("done", **result, peak_rss_mib=round(peak_rss_mib(), 1), cpu_seconds=cpu_seconds() - before)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
