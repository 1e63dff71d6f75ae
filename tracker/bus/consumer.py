"""The worker: consume Nova's notifications, apply them in lanes, ack after commit.

Shape borrowed from kombu's ``ConsumerMixin`` (connect, consume, drain events,
reconnect) with two rules of our own, as dramatiq's worker has them:
acknowledgement is decided in one place (:meth:`Worker._settle`), on the
consumer thread that owns the channel, and only once the lane reports the
transaction committed.
"""

import dataclasses
import datetime
import logging
import queue
import threading
import time
from typing import Any

import kombu
import kombu.exceptions
from amqp.exceptions import ChannelError, MessageNacked
from oslo_config import cfg

from tracker import health
from tracker.bus import amqp, decide
from tracker.bus.deadletter import dead_letter
from tracker.bus.lanes import Lanes
from tracker.bus.relay import Relay
from tracker.db.api import Store
from tracker.db.apply import STALE, Outcome
from tracker.errors import TrackerError
from tracker.events.model import InstanceEvent
from tracker.metrics import Metrics
from tracker.retry import is_transient_db_error, reconnect_retrying

LOG = logging.getLogger(__name__)

_DRAIN_TIMEOUT = 0.2
_METRICS_INTERVAL = 60.0
_HEALTH_INTERVAL = 5.0
# Messages the dead-letter queue refused stay unacked ("parked"); after this
# long the session is restarted so RabbitMQ redelivers them for another try.
_PARK_LIMIT = 60.0
# Channel errors too: RabbitMQ closes the channel when a delivery stays unacked
# past consumer_timeout (a long database outage); a new channel starts afresh.
_CONNECTION_ERRORS = (
    OSError,
    kombu.exceptions.OperationalError,
    kombu.exceptions.ConnectionError,
    ChannelError,
)


class _ParkedTooLong(Exception):
    """Internal: reconnect so that parked messages are redelivered."""


class ConfigurationError(TrackerError):
    """The broker refused our declarations: retrying cannot help, an operator must."""


@dataclasses.dataclass(frozen=True)
class Work:
    epoch: int
    message: Any
    event: InstanceEvent


@dataclasses.dataclass(frozen=True)
class Done:
    work: Work
    outcome: Outcome | None = None
    error: BaseException | None = None


class Worker:
    def __init__(self, conf: cfg.ConfigOpts, store: Store, stopping: threading.Event) -> None:
        self._conf = conf
        self._store = store
        self._stopping = stopping
        self.metrics = Metrics()
        # The relay stops only after the lanes finished: their last commits
        # must still be announced.
        self._relay_stopping = threading.Event()
        self.relay = Relay(conf, store, self._relay_stopping)
        self._results: queue.Queue[Done] = queue.Queue()
        self._lanes: Lanes[Work, Done] = Lanes(conf.worker.lanes, self._process, self._results)
        self._epoch = 0
        self._channel: Any = None
        self._last_metrics = time.monotonic()
        self._last_health = 0.0
        self._last_progress = time.monotonic()
        self._parked: list[Any] = []
        self._parked_since = 0.0

    def run(self) -> None:
        """Consume until ``stopping`` is set; reconnects with backoff on broker faults."""
        relay_thread = threading.Thread(target=self.relay.run, name="relay", daemon=True)
        self._lanes.start()
        relay_thread.start()
        try:
            while not self._stopping.is_set():
                self._session()
        finally:
            self._stopping.set()
            self._lanes.stop(self._conf.worker.shutdown_timeout)
            self._relay_stopping.set()
            self.relay.wake.set()
            relay_thread.join(self._conf.worker.shutdown_timeout)
            LOG.info("worker stopped; counters: %s", self.metrics.snapshot())

    # -- one connection's lifetime -------------------------------------------------

    def _session(self) -> None:
        connection = amqp.connect(self._conf)
        try:
            self._connect(connection)
            self._consume(connection)
        except _CONNECTION_ERRORS as error:
            LOG.warning("RabbitMQ connection lost (%s: %s); reconnecting", type(error).__name__, error)
        except _ParkedTooLong:
            LOG.warning(
                "the dead-letter queue refused %d message(s); requeueing, reconnecting", len(self._parked)
            )
            for message in self._parked:
                message.requeue()
        finally:
            # Work still queued from this connection can no longer be acked:
            # a new epoch makes the lanes skip it while we reconnect.
            self._epoch += 1
            self._channel = None
            self._parked.clear()
            connection.release()

    def _connect(self, connection: kombu.Connection) -> None:
        retrying = reconnect_retrying(self._conf, self._stopping, _CONNECTION_ERRORS, "RabbitMQ connect")
        retrying(connection.ensure_connection, max_retries=1)
        LOG.info("connected to %s", connection.as_uri())

    def _consume(self, connection: kombu.Connection) -> None:
        self._channel = connection.channel()
        notifications = self._declare(self._channel)
        consumer = kombu.Consumer(
            self._channel,
            queues=[notifications],
            on_message=self._on_message,
            on_decode_error=self._on_undecodable,
        )
        consumer.qos(prefetch_count=self._conf.nova_notifications.prefetch_count)
        with consumer:
            LOG.info("consuming %s bound to %s", notifications.name, amqp.notification_topics(self._conf))
            while not self._stopping.is_set():
                self._settle()
                self._drain(connection)
        self._finish_in_flight(connection)

    def _declare(self, channel: Any) -> kombu.Queue:
        notifications = amqp.notification_queue(self._conf)(channel)
        try:
            notifications.declare()
            amqp.dead_letter_queue(self._conf)(channel).declare()
        except Exception as error:
            if amqp.is_precondition_failed(error):
                raise ConfigurationError(
                    f"RabbitMQ refused our declarations ({error}). Exchange "
                    f"{self._conf.nova_notifications.exchange!r} or queue "
                    f"{notifications.name!r} exists with other arguments: set "
                    "[nova_notifications] amqp_durable_queues to Nova's "
                    "[oslo_messaging_rabbit] amqp_durable_queues."
                ) from error
            raise
        return notifications

    def _drain(self, connection: kombu.Connection) -> None:
        try:
            connection.drain_events(timeout=_DRAIN_TIMEOUT)
        except TimeoutError:
            connection.heartbeat_check()
        now = time.monotonic()
        if self._parked and now - self._parked_since > _PARK_LIMIT:
            raise _ParkedTooLong()
        if now - self._last_metrics > _METRICS_INTERVAL:
            self._last_metrics = now
            LOG.info("counters: %s", self.metrics.snapshot())
        if self._conf.worker.health_file and now - self._last_health > _HEALTH_INTERVAL:
            self._last_health = now
            self._write_health()

    def _write_health(self) -> None:
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        pending = self._lanes.pending()
        stalled = 0.0 if not pending else time.monotonic() - self._last_progress
        record = health.record(self._conf.host, self.metrics.snapshot(), pending, now, stalled)
        try:
            health.write(self._conf.worker.health_file, record)
        except OSError as error:
            LOG.warning("cannot write the health record %s: %s", self._conf.worker.health_file, error)

    def _finish_in_flight(self, connection: kombu.Connection) -> None:
        """After cancelling: let lanes finish what they hold, acking as they go."""
        deadline = time.monotonic() + self._conf.worker.shutdown_timeout
        while self._lanes.pending() and time.monotonic() < deadline:
            self._settle()
            connection.heartbeat_check()
            time.sleep(0.05)
        self._lanes.stop(max(0.0, deadline - time.monotonic()))
        self._settle()
        if self._lanes.pending():
            LOG.warning(
                "%d messages unfinished at shutdown; RabbitMQ will redeliver them", self._lanes.pending()
            )

    # -- per message ---------------------------------------------------------------

    def _on_message(self, message: Any) -> None:
        self.metrics.incr("received")
        try:
            decision = decide.decide(message.body, self._conf.nova_notifications.max_message_bytes)
            self._route(message, decision)
        except Exception as error:
            LOG.exception("could not route a message; setting it aside")
            self._set_aside(message, f"unexpected {type(error).__name__}: {str(error)[:300]}")

    def _on_undecodable(self, message: Any, error: Exception) -> None:
        """kombu could not even build the message (bad compression header…)."""
        self.metrics.incr("received")
        self._set_aside(message, f"undecodable by kombu: {type(error).__name__}: {str(error)[:300]}")

    def _route(self, message: Any, decision: decide.Decision) -> None:
        if decision.event is not None:
            self._lanes.submit(decision.lane_key, Work(self._epoch, message, decision.event))
        elif decision.kind == decide.IGNORE:
            self.metrics.incr("ignored")
            LOG.debug("ignored %s: %s", decision.event_type, decision.reason)
            message.ack()
        else:
            self._set_aside(message, decision.reason)

    def _process(self, work: Work) -> Done:
        """Runs in a lane thread: the database transaction, nothing else."""
        if work.epoch != self._epoch:
            # Delivered on a connection that is gone: RabbitMQ redelivers it.
            return Done(work)
        try:
            outcome = self._store.apply(work.event)
        except Exception as error:  # noqa: BLE001 - reported to the consumer thread
            return Done(work, error=error)
        if outcome.changed_nodes:
            self.relay.wake.set()
        return Done(work, outcome=outcome)

    def _settle(self) -> None:
        """The one place that acknowledges: only after the lane's commit."""
        while True:
            try:
                done = self._results.get_nowait()
            except queue.Empty:
                return
            self._last_progress = time.monotonic()
            self._settle_one(done)

    def _settle_one(self, done: Done) -> None:
        if done.work.epoch != self._epoch or self._channel is None:
            # Delivered on a connection that is gone: RabbitMQ redelivers it,
            # and applying it again changes nothing.
            self.metrics.incr("redelivery_expected")
            return
        if done.outcome is not None:
            self.metrics.incr(done.outcome.status)
            _log_outcome(done.work.event, done.outcome)
            done.work.message.ack()
        elif done.error is not None and is_transient_db_error(done.error):
            self.metrics.incr("left_for_redelivery")  # stopping while the database was down
        else:
            LOG.error("applying %s failed", done.work.event.action, exc_info=done.error)
            self._set_aside(done.work.message, f"{type(done.error).__name__}: {done.error}")

    def _set_aside(self, message: Any, reason: str) -> None:
        """Dead-letter (confirmed), then ack. If the dead-letter queue refuses it, the
        message stays unacked on this channel, parked until the next reconnect."""
        routing_key = message.delivery_info.get("routing_key")
        try:
            dead_letter(self._channel, self._conf, message.body, reason, routing_key)
        except (MessageNacked, TimeoutError):
            self.metrics.incr("dead_letter_refused")
            LOG.error("the dead-letter queue refused a message (%s); it stays unacknowledged", reason[:200])
            if not self._parked:
                self._parked_since = time.monotonic()
            self._parked.append(message)
            return
        self.metrics.incr("dead_lettered")
        message.ack()


def _log_outcome(event: InstanceEvent, outcome: Outcome) -> None:
    """One line per event at DEBUG; a dropped late event is worth INFO at 3 a.m."""
    level = logging.INFO if outcome.status == STALE else logging.DEBUG
    if LOG.isEnabledFor(level):
        LOG.log(
            level,
            "%s instance.%s of %s from %s at %s (payload host %s/%s), nodes changed: %s",
            outcome.status,
            event.action,
            event.instance_uuid,
            event.publisher_host,
            event.timestamp,
            event.host,
            event.node,
            list(outcome.changed_nodes),
        )
