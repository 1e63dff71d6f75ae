"""The worker: consume Nova's notifications, apply them in lanes, ack after commit.

Shape borrowed from kombu's ``ConsumerMixin`` (connect, consume, drain events,
reconnect) with rules of our own, as dramatiq's worker has them:

- The delivery callback only decides and hands over: it never waits on the
  consuming connection (a wait there delivers the next message into the
  callback again). Events go to the lanes, poison to the dead-letter thread,
  which publishes on a connection of its own.
- Acknowledgement is decided in one place (:meth:`Worker._settle`), on the
  consumer thread that owns the channel, and only once the lane's
  transaction committed or the dead letter was confirmed.
- A delivery belongs to its session: once a session ends, nothing it
  delivered is applied or acknowledged any more (RabbitMQ redelivers it).
"""

import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import kombu
import kombu.exceptions
from amqp.exceptions import ChannelError
from oslo_config import cfg

from tracker import escape
from tracker.bus import amqp, decide
from tracker.bus.acks import Acks
from tracker.bus.deadletter import DeadLetters, Letter
from tracker.bus.delivery import Delivery, Session
from tracker.bus.host_events import HostEvents
from tracker.bus.lanes import Lanes
from tracker.bus.monitor import Monitor
from tracker.bus.outcomes import Applied, DeadLettered, HostNoted, Refused, Result, Unapplied
from tracker.bus.relay import Relay
from tracker.db.api import Store, Verdict
from tracker.db.apply import Outcome, PoisonEvent
from tracker.errors import ConfigError
from tracker.events.model import InstanceEvent
from tracker.metrics import Metrics
from tracker.retry import is_retried_db_error, reconnect_retrying

LOG = logging.getLogger(__name__)

_DRAIN_TIMEOUT = 0.2
# Channel errors too: RabbitMQ closes the channel when a delivery stays unacked
# past consumer_timeout (a long database outage); a new channel starts afresh.
_CONNECTION_ERRORS = (
    OSError,
    kombu.exceptions.OperationalError,
    kombu.exceptions.ConnectionError,
    ChannelError,
)
# A relay that reconnects fails briefly; one failing this long is a problem.
_RELAY_GRACE = 15.0
# A session that ended sooner than this was not healthy: wait before the next.
_HEALTHY_SESSION = 10.0
# Settled deliveries behind a slow one wait this long for it before being acked alone.
_LONGEST_HELD_ACK = 1.0


class ConfigurationError(ConfigError):
    """The broker refused our declarations: retrying cannot help, an operator must."""


class Work:
    """An event on its way through a lane, with the delivery it came in."""

    __slots__ = ("delivery", "event")

    def __init__(self, delivery: Delivery, event: InstanceEvent) -> None:
        self.delivery = delivery
        self.event = event


class Worker:
    def __init__(self, conf: cfg.ConfigOpts, store: Store, stopping: threading.Event) -> None:
        self._conf = conf
        self._store = store
        self._stopping = stopping
        self.metrics = Metrics()
        self.consuming = threading.Event()
        # The relay and the dead letters stop only after the lanes finished:
        # their last commits must be announced, their poison set aside.
        self._helpers_stopping = threading.Event()
        self.relay = Relay(conf, store, self._helpers_stopping)
        self._results: queue.Queue[Result] = queue.Queue()
        self._dead_letters = DeadLetters(
            conf, self._helpers_stopping, lambda delivery: self._results.put(DeadLettered(delivery))
        )
        self._lanes: Lanes[Work, Result] = Lanes(
            conf.worker.lanes, self._apply, self._results, conf.worker.batch_size, conf.worker.batch_wait
        )
        self._host_events = HostEvents(store, self._results, self.relay.wake.set)
        self._monitor = Monitor(conf, self.metrics)
        self._throttle = self._monitor.throttle
        self._session: Session | None = None
        self._paused = False
        self._restart_delay = 0.0
        self._shutdown_deadline: float | None = None

    def idle(self) -> bool:
        """Nothing received is still in flight (lanes, dead letters, results to settle)."""
        return not self._in_flight() and self._results.empty()

    def run(self) -> None:
        """Consume until ``stopping`` is set; reconnects with backoff on broker faults."""
        helpers = [
            threading.Thread(target=self.relay.run, name="relay", daemon=True),
            threading.Thread(target=self._dead_letters.run, name="dead-letters", daemon=True),
            threading.Thread(target=self._host_events.run, name="host-events", daemon=True),
        ]
        self._lanes.start()
        for thread in helpers:
            thread.start()
        try:
            while not self._stopping.is_set():
                self._session_with_restart_delay()
        finally:
            self._stopping.set()
            self._lanes.stop(self._shutdown_time_left())
            self._helpers_stopping.set()
            self._dead_letters.stop()
            self._host_events.stop()
            self.relay.wake.set()
            for thread in helpers:
                thread.join(self._shutdown_time_left())
            LOG.info("worker stopped; counters: %s", self.metrics.snapshot())

    def _shutdown_time_left(self) -> float:
        """One ``shutdown_timeout`` for the whole shutdown, counted from its first step:
        a lane or the relay blocked on a dead database must not stretch it."""
        if self._shutdown_deadline is None:
            self._shutdown_deadline = time.monotonic() + self._conf.worker.shutdown_timeout
        return max(0.0, self._shutdown_deadline - time.monotonic())

    # -- one connection's lifetime -------------------------------------------------

    def _session_with_restart_delay(self) -> None:
        """Sessions that end quickly (a refused declaration…) restart ever more slowly,
        as kombu's ConsumerMixin and dramatiq do, instead of spinning."""
        if self._restart_delay:
            self._stopping.wait(self._restart_delay)
        started = time.monotonic()
        self._run_session()
        if time.monotonic() - started > _HEALTHY_SESSION:
            self._restart_delay = 0.0
        else:
            initial = max(self._conf.worker.reconnect_initial_backoff, 0.1)
            self._restart_delay = min(
                max(2 * self._restart_delay, initial), self._conf.worker.reconnect_max_backoff
            )

    def _run_session(self) -> None:
        connection = amqp.connect(self._conf)
        failed = True
        try:
            self._connect(connection)
            self._consume(connection)
            failed = False
        except _CONNECTION_ERRORS as error:
            LOG.warning(
                "RabbitMQ connection lost (%s: %s); reconnecting", type(error).__name__, escape.text(error)
            )
        finally:
            # Closed before the connection goes: nothing it still delivers, and
            # no work finished later, is applied or acked (see Delivery).
            if self._session is not None:
                self._session.close()
            self._session = None
            self.consuming.clear()
            self._paused = False
            (amqp.discard if failed else amqp.close)(connection)

    def _connect(self, connection: kombu.Connection) -> None:
        retrying = reconnect_retrying(
            self._conf, self._stopping, _CONNECTION_ERRORS, f"RabbitMQ connect to {amqp.describe(self._conf)}"
        )
        retrying(connection.ensure_connection, max_retries=1)
        LOG.info("connected to %s", connection.as_uri())

    def _consume(self, connection: kombu.Connection) -> None:
        channel = connection.channel()
        amqp.refuse_compression(channel)
        notifications = self._declare(channel)
        prefetch = self._conf.nova_notifications.prefetch_count
        acks = Acks(
            channel,
            most_held=prefetch // 4,
            longest_held=_LONGEST_HELD_ACK,
            multiple=connection.transport.driver_type == "amqp",
        )
        session = Session(acks)
        self._session = session
        consumer = kombu.Consumer(
            channel,
            queues=[notifications],
            on_message=functools.partial(self._on_message, session),
            on_decode_error=functools.partial(self._on_undecodable, session),
        )
        consumer.qos(prefetch_count=prefetch)
        with consumer:
            LOG.info("consuming %s bound to %s", notifications.name, amqp.notification_topics(self._conf))
            self.consuming.set()
            while not self._stopping.is_set():
                self._settle()
                self._pause_while_dead_letters_refused(consumer)
                self._drain(connection)
        self._finish_in_flight(connection)

    def _declare(self, channel: Any) -> kombu.Queue:
        notifications = amqp.notification_queue(self._conf)(channel)
        try:
            notifications.declare()
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

    def _pause_while_dead_letters_refused(self, consumer: kombu.Consumer) -> None:
        """No new deliveries while poison cannot be set aside; resume once it can."""
        refusing = self._dead_letters.refusing_for() is not None
        if refusing and not self._paused:
            consumer.cancel()
            self._paused = True
            LOG.debug("consumption paused: the dead-letter queue refuses messages")
        elif self._paused and not refusing:
            consumer.consume()
            self._paused = False
            LOG.debug("consumption resumed: the dead-letter queue accepts messages again")

    def _drain(self, connection: kombu.Connection) -> None:
        try:
            connection.drain_events(timeout=_DRAIN_TIMEOUT)
        except TimeoutError:
            connection.heartbeat_check()
        self._monitor.tick(self._in_flight(), self._lanes.longest_batch(), self._problems)

    def _in_flight(self) -> int:
        return self._lanes.pending() + self._dead_letters.pending() + self._host_events.pending()

    def _problems(self) -> list[str]:
        """What keeps the worker from doing its job, for the health check."""
        problems = []
        broken = self._store.environment.problem()
        if broken is not None:
            problems.append(broken)
        refusing_for = self._dead_letters.refusing_for()
        if refusing_for is not None:
            problems.append(
                f"the dead-letter queue {self._conf.nova_notifications.dead_letter_queue} has refused "
                f"messages for {refusing_for:.0f}s ({self._dead_letters.refusal}); consumption is paused"
            )
        relay_failing_for = self.relay.failing_for()
        if relay_failing_for is not None and relay_failing_for > _RELAY_GRACE:
            problems.append(
                f"capacity notifications have failed to publish for {relay_failing_for:.0f}s "
                f"({self.relay.failure}); schedulers hear nothing"
            )
        return problems

    def _finish_in_flight(self, connection: kombu.Connection) -> None:
        """After cancelling: let lanes and dead letters finish what they hold, acking as they go."""
        while self._in_flight() and self._shutdown_time_left() > 0:
            self._settle()
            # read as well: heartbeat_check counts what was read, and would
            # take a quiet connection for a dead one
            with contextlib.suppress(TimeoutError):
                connection.drain_events(timeout=0.05)
            connection.heartbeat_check()
        self._lanes.stop(self._shutdown_time_left())
        self._settle(final=True)
        if self._in_flight():
            LOG.warning("%d messages unfinished at shutdown; RabbitMQ will redeliver them", self._in_flight())

    # -- per message: the delivery callback decides and hands over, nothing more -------

    def _on_message(self, session: Session, message: Any) -> None:
        if not session.open:
            return  # handed over while the connection closes: RabbitMQ redelivers it
        self.metrics.incr("received")
        delivery = self._received(session, message)
        compression = (message.headers or {}).get(amqp.REFUSED_COMPRESSION_HEADER)
        if compression is not None:
            # its body means something else than its bytes: kept as size and digest only
            self._set_aside(
                delivery, f"compressed bodies are refused (compression: {compression})", whole=False
            )
            return
        try:
            decision = decide.decide(message.body, self._conf.nova_notifications.max_message_bytes)
        except Exception as error:  # noqa: BLE001 - a decoder bug must not stop consuming
            self._throttle.log(
                logging.ERROR, "messages not decided", "could not decide a message", exc_info=True
            )
            self._set_aside(delivery, f"unexpected {type(error).__name__}: {error}")
            return
        if decision.event is not None:
            self._lanes.submit(decision.lane_key, Work(delivery, decision.event))
        elif decision.host_event is not None:
            self._host_events.submit(delivery, decision.host_event)
        elif decision.kind == decide.IGNORE:
            self.metrics.incr("ignored")
            LOG.debug("ignored %s: %s", escape.text(decision.event_type), decision.reason)
            self._ack(delivery)
        else:
            self._set_aside(delivery, decision.reason)

    def _on_undecodable(self, session: Session, message: Any, error: Exception) -> None:
        """kombu could not even build the message (bad compression header…)."""
        if session.open:
            self.metrics.incr("received")
            self._set_aside(
                self._received(session, message), f"undecodable by kombu: {type(error).__name__}: {error}"
            )

    @staticmethod
    def _received(session: Session, message: Any) -> Delivery:
        session.acks.received(message.delivery_tag)
        return Delivery(session, message)

    def _set_aside(self, delivery: Delivery, reason: str, whole: bool = True) -> None:
        """``whole``: keep the body (context removed); else only its size and digest."""
        self._dead_letters.submit(Letter(delivery, escape.text(reason, 1000), whole))

    # -- in a lane thread: the database transaction, nothing else -------------------------

    def _apply(self, works: Sequence[Work]) -> list[Result]:
        live = [work for work in works if work.delivery.live]
        results: list[Result] = [Unapplied(work.delivery) for work in works if not work.delivery.live]

        def unwanted() -> bool:
            """Every delivery's session ended (RabbitMQ's consumer_timeout closed the channel
            during a long database fault, a lost connection): RabbitMQ redelivers them, and
            the redelivered copies, not these, are what to retry."""
            return not any(work.delivery.live for work in live)

        verdicts = self._verdicts([work.event for work in live], unwanted) if live else []
        for work, verdict in zip(live, verdicts, strict=True):
            if isinstance(verdict, Outcome):
                results.append(Applied(work.delivery, work.event, verdict))
            elif isinstance(verdict, PoisonEvent):
                results.append(Refused(work.delivery, verdict.reason))
            elif is_retried_db_error(verdict):
                results.append(Unapplied(work.delivery))  # not its fault: stopping, or its session ended
            else:
                results.append(Refused(work.delivery, f"{type(verdict).__name__}: {verdict}"))
        if any(isinstance(result, Applied) and result.outcome.changed_nodes for result in results):
            self.relay.wake.set()
        return results

    def _verdicts(
        self, events: list[InstanceEvent], unwanted: Callable[[], bool]
    ) -> list[Verdict | Exception]:
        """The store's verdicts; an unexpected failure of a batch is pinned on its
        event by applying them one by one, so it cannot take its neighbours down."""
        try:
            return list(self._store.apply_batch(events, unwanted))
        except Exception as error:  # noqa: BLE001 - reported per event to the consumer thread
            if len(events) == 1 or is_retried_db_error(error):
                if not is_retried_db_error(error):
                    self._throttle.log(
                        logging.ERROR, "events failed", "applying an event failed", exc_info=True
                    )
                return [error] * len(events)
            return [verdict for event in events for verdict in self._verdicts([event], unwanted)]

    # -- the one place that acknowledges -------------------------------------------------

    def _settle(self, final: bool = False) -> None:
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                break
            self._settle_one(result)
        if self._session is not None:
            self._session.acks.flush(final)

    def _settle_one(self, result: Result) -> None:
        delivery = result.delivery
        if not delivery.live or delivery.session is not self._session:
            # From a connection that is gone: RabbitMQ redelivers it, and
            # applying it again changes nothing.
            self.metrics.incr("redelivery_expected")
            return
        if isinstance(result, Applied):
            self._monitor.outcome(result.event, result.outcome)
            self._ack(delivery)
        elif isinstance(result, DeadLettered):
            self.metrics.incr("dead_lettered")
            self._ack(delivery)
        elif isinstance(result, HostNoted):
            self.metrics.incr("host_events")
            self._ack(delivery)
        elif isinstance(result, Refused):
            self._set_aside(delivery, result.reason)
        else:
            self.metrics.incr("left_for_redelivery")  # stopping while the database was down

    @staticmethod
    def _ack(delivery: Delivery) -> None:
        """Acknowledged with its neighbours at the end of this settling round."""
        delivery.session.acks.settled(delivery.message.delivery_tag)
