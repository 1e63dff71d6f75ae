"""The outbox relay: publishes capacity notifications after the usage change committed."""

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import kombu
from oslo_config import cfg

from tracker import escape
from tracker.bus import amqp
from tracker.bus.announce import Announcer
from tracker.bus.publisher import CapacityPublisher
from tracker.db.api import Store
from tracker.retry import reconnect_retrying

LOG = logging.getLogger(__name__)
# Under load, heartbeats are read at least this often, and four times per [worker] heartbeat.
_KEEP_ALIVE_EVERY = 5.0


class Relay:
    """Drains the outbox on every wake-up (a commit) and every ``relay_interval``, and
    re-announces every node over each ``announce_interval``."""

    def __init__(self, conf: cfg.ConfigOpts, store: Store, stopping: threading.Event) -> None:
        self._conf = conf
        self._store = store
        self._stopping = stopping
        self.wake = threading.Event()
        self._connection: kombu.Connection | None = None
        self._publisher: CapacityPublisher | None = None
        self.published = 0
        self.alerts = 0
        self.announcer = Announcer(store, conf.capacity_notifications.announce_interval)
        self.failure: str | None = None
        self._failing_since: float | None = None
        self._alive_at = self._swept_at = time.monotonic()
        heartbeat = conf.worker.heartbeat
        self._keep_alive_every = min(_KEEP_ALIVE_EVERY, heartbeat / 4) if heartbeat else _KEEP_ALIVE_EVERY

    def drain(self, announce: bool = False, sweep: bool = True) -> int:
        """Publish the capacity rows pending now, and the nodes due for re-announcing if
        ``announce``; returns how many outbox rows were settled.

        Alerts are looked for when capacity rows were settled (a transaction that writes an
        alert writes capacity rows too) or on a ``sweep``: after a commit's wake-up that found
        nothing, one more transaction would only delay the next commit's notifications.
        """
        batch = self._conf.capacity_notifications.relay_batch_size
        settled = 0
        try:
            publisher = self._ensure_publisher()
            while count := self._store.drain_outbox(batch, publisher.publish):
                settled += count
                if count < batch:
                    break  # fewer than asked: none left (or other relays claimed them)
            while (settled or sweep) and (
                count := self._store.drain_alerts(batch, self._alerting(publisher))
            ):
                self.alerts += count
                if count < batch:
                    break
            if announce:
                self.announcer.step(publisher.publish)
        except Exception as error:
            self._discard()  # a broken connection is not reused; the rows stay
            self.failure = escape.text(f"{type(error).__name__}: {error}")
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            raise
        self._failing_since = None
        self.published += settled
        return settled

    def failing_for(self) -> float | None:
        """Seconds every drain has failed (schedulers hear nothing), None while it works."""
        since = self._failing_since
        return None if since is None else time.monotonic() - since

    def run(self) -> None:
        """Loop until stopping, then drain once more so no committed change goes unannounced."""
        woken = False
        while not self._stopping.is_set():
            # a sweep on every idle round, and at least every relay_interval under load
            sweep = (
                not woken
                or time.monotonic() - self._swept_at > self._conf.capacity_notifications.relay_interval
            )
            if sweep:
                self._swept_at = time.monotonic()
            self._drain_retrying(sweep)
            woken = self.wake.wait(self._wait())
            self.wake.clear()
            # Reading heartbeats is a 10 ms wait: after every commit it would delay each drain
            # under load, so it runs when idle, and at least every few seconds.
            if not woken or time.monotonic() - self._alive_at > self._keep_alive_every:
                self._keep_alive()
        try:
            self.drain()
        except Exception as error:  # noqa: BLE001 - at exit: the rows stay for the next worker
            LOG.warning("capacity relay: final drain failed (%s); rows kept in the outbox", error)
        self.close()

    def _wait(self) -> float:
        interval: float = self._conf.capacity_notifications.relay_interval
        announce_in = self.announcer.seconds_until_due()
        return interval if announce_in is None else min(interval, announce_in)

    @staticmethod
    def _alerting(
        publisher: CapacityPublisher,
    ) -> Callable[[list[tuple[str, dict[str, Any]]]], None]:
        """Publish alerts, then log each: one warning per crossing, as each alert is one."""

        def publish(alerts: list[tuple[str, dict[str, Any]]]) -> None:
            publisher.publish_alerts(alerts)
            for event_type, payload in alerts:
                LOG.warning("%s: %s", event_type, escape.text(_describe(payload), 1000))

        return publish

    def _drain_retrying(self, sweep: bool) -> None:
        retrying = reconnect_retrying(self._conf, self._stopping, Exception, "capacity relay")
        try:
            retrying(self.drain, announce=True, sweep=sweep)
        except Exception as error:  # noqa: BLE001 - only reached when stopping
            LOG.info("capacity relay: stopping with a failed drain (%s)", error)

    def _keep_alive(self) -> None:
        """Send heartbeats while idle, or RabbitMQ drops the connection between commits."""
        self._alive_at = time.monotonic()
        if self._connection is None:
            return
        try:
            # heartbeat_check counts what was read: read the broker's heartbeats first
            with contextlib.suppress(TimeoutError):
                self._connection.drain_events(timeout=0.01)
            self._connection.heartbeat_check()
        except Exception as error:  # noqa: BLE001 - reconnected on the next drain
            LOG.info("capacity relay: connection lost while idle (%s)", error)
            self._discard()

    def _ensure_publisher(self) -> CapacityPublisher:
        if self._publisher is None:
            self._connection = amqp.connect(self._conf, confirm_each=False)
            self._connection.ensure_connection(max_retries=1)
            self._publisher = CapacityPublisher(self._connection, self._conf)
        return self._publisher

    def close(self) -> None:
        """On the way out: close the connection with the handshake."""
        if self._connection is not None:
            amqp.close(self._connection)
        self._connection = None
        self._publisher = None

    def _discard(self) -> None:
        """After a failure: drop the connection without waiting on it."""
        if self._connection is not None:
            amqp.discard(self._connection)
        self._connection = None
        self._publisher = None


def _describe(payload: dict[str, Any]) -> str:
    if "project_id" in payload:
        return (
            f"project {payload['project_id']} uses {payload['used']} {payload['resource']}, "
            f"over its limit of {payload['limit']}"
        )
    over = ", ".join(
        f"{name} used {value['used']} of capacity {value['capacity']}"
        for name, value in sorted(payload["overcommitted"].items())
    )
    node = f"node {payload['host']}/{payload['nodename']} (generation {payload['generation']})"
    return f"{node} is over-committed: {over}"
