"""Set aside messages that can never be applied, on a connection of their own.

The consumer never publishes: a confirmed publish waits on its connection,
and waiting on the consuming connection inside a delivery callback hands the
next delivery to the callback again, re-entrantly, until it wedges. So one
thread owns a connection used only for dead letters. It publishes each with
publisher confirms and a bounded wait, then reports the delivery back to the
consumer thread, which alone acknowledges.

When the dead-letter queue refuses (full with ``reject-publish``, missing
permissions, broker unreachable) the letter stays unacknowledged and is
retried with backoff; :attr:`DeadLetters.refusal` says why, the worker pauses
consumption and fails its health check, and everything resumes on its own once
the queue accepts again. Each change of state is logged once.
"""

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import kombu
import kombu.exceptions
import tenacity
from amqp.exceptions import AMQPError, MessageNacked
from oslo_config import cfg

from tracker import escape
from tracker.bus import amqp
from tracker.bus.delivery import Delivery
from tracker.events.redact import redact, withhold
from tracker.retry import reconnect_retrying
from tracker.throttle import Throttle

LOG = logging.getLogger(__name__)


class Unroutable(Exception):
    """The broker returned a letter: the dead-letter queue does not exist (any more)."""


REASON_HEADER = "x-tracker-reason"
ROUTING_KEY_HEADER = "x-original-routing-key"
SIZE_HEADER = "x-original-bytes"
DIGEST_HEADER = "x-original-sha256"
WITHHELD_HEADER = "x-tracker-withheld"
_REFUSALS = (MessageNacked, Unroutable, OSError, AMQPError, kombu.exceptions.OperationalError)
# An idle connection may have been dropped by the broker meanwhile: one failed
# attempt is only a reconnect; the second in a row is a refusal.
_ATTEMPTS_BEFORE_REFUSAL = 2
_STOP = object()


@dataclasses.dataclass(frozen=True)
class Letter:
    delivery: Delivery
    reason: str
    whole: bool = True  # keep the body, context removed; else only its size and digest


class DeadLetters:
    """The dead-letter publisher thread; ``done(delivery)`` is called once a letter is safe."""

    def __init__(self, conf: cfg.ConfigOpts, stopping: threading.Event, done: Callable[[Delivery], None]):
        self._conf = conf
        self._stopping = stopping
        self._done = done
        self._letters: queue.Queue[Any] = queue.Queue()
        self._connection: kombu.Connection | None = None
        self._producer: kombu.Producer | None = None
        self._refused_at: float | None = None
        self.refusal: str | None = None
        self._returned = False
        self._throttle = Throttle(LOG)

    def submit(self, letter: Letter) -> None:
        self._letters.put(letter)

    def pending(self) -> int:
        return self._letters.unfinished_tasks

    def refusing_for(self) -> float | None:
        """Seconds the queue has been refusing, None while it accepts."""
        refused_at = self._refused_at
        return None if refused_at is None else time.monotonic() - refused_at

    def stop(self) -> None:
        self._letters.put(_STOP)

    def run(self) -> None:
        try:
            while (letter := self._letters.get()) is not _STOP:
                try:
                    self._deliver(letter)
                finally:
                    self._letters.task_done()
                if self._refused_at is not None and not self._letters.unfinished_tasks:
                    # The refused letters went back to RabbitMQ with their session:
                    # none waits, so nothing need pause. The next letter tells.
                    self._accepting("no letter waits any more")
        finally:
            if self._connection is not None:
                amqp.close(self._connection)

    def _deliver(self, letter: Letter) -> None:
        """Publish until it is confirmed, its session is gone, or we are stopping."""
        retrying = reconnect_retrying(
            self._conf,
            self._stopping,
            _REFUSALS,
            "dead-letter queue",
            before_sleep=self._refused,
            give_up=lambda: not letter.delivery.live,
        )
        try:
            retrying(self._publish, letter)
        except _REFUSALS:
            return  # stopping, or its connection is gone: RabbitMQ redelivers it
        if self._refused_at is not None:
            self._accepting("the dead-letter queue accepts messages again")
        self._done(letter.delivery)
        self._throttle.log(
            logging.WARNING,
            "messages dead-lettered",
            "dead-lettered a message from %s to %s: %s",
            escape.text(letter.delivery.routing_key),
            self._conf.nova_notifications.dead_letter_queue,
            escape.text(letter.reason),
        )

    def _accepting(self, why: str) -> None:
        LOG.warning("%s; consumption resumes", why)
        self._refused_at = None
        self.refusal = None

    def _publish(self, letter: Letter) -> None:
        body = letter.delivery.message.body
        if letter.whole:
            redacted = redact(body, self._conf.nova_notifications.dead_letter_max_bytes)
        else:
            redacted = withhold(body, "not kept: it was refused as it came")
        self._returned = False
        try:
            self._ensure_producer().publish(
                redacted.text,
                exchange="",
                routing_key=self._conf.nova_notifications.dead_letter_queue,
                mandatory=True,  # a queue deleted meanwhile returns it instead of losing it
                delivery_mode=2,
                confirm_timeout=amqp.CONFIRM_TIMEOUT,
                content_type="application/json",
                content_encoding="utf-8",
                headers={
                    REASON_HEADER: escape.text(letter.reason, limit=1000),
                    ROUTING_KEY_HEADER: escape.text(letter.delivery.routing_key, limit=255),
                    SIZE_HEADER: redacted.size,
                    DIGEST_HEADER: redacted.sha256,
                    WITHHELD_HEADER: redacted.withheld,
                    "x-tracker-worker": self._conf.host,
                },
            )
            if self._returned:
                raise Unroutable(f"no queue {self._conf.nova_notifications.dead_letter_queue}")
        except MessageNacked:
            raise  # the queue said no (full): the connection itself is fine
        except _REFUSALS:
            self._close()  # not reused: the next connection declares the queue again
            raise

    def _on_return(self, *_args: Any) -> None:
        """basic.return arrives before the confirm the publish waits for."""
        self._returned = True

    def _refused(self, state: tenacity.RetryCallState) -> None:
        """Log the first refusal of a run of them, not each retry."""
        error = state.outcome.exception() if state.outcome else None
        if state.attempt_number < _ATTEMPTS_BEFORE_REFUSAL:
            LOG.debug("dead letter not confirmed (%s); reconnecting", escape.text(error))
            return
        self.refusal = escape.text(f"{type(error).__name__}: {error}")
        if self._refused_at is None:
            self._refused_at = time.monotonic()
            LOG.error(
                "the dead-letter queue %s refuses messages (%s); consumption pauses until it accepts",
                self._conf.nova_notifications.dead_letter_queue,
                self.refusal,
            )

    def _ensure_producer(self) -> kombu.Producer:
        """One connection, declared once, for every letter until it breaks."""
        if self._producer is None:
            connection = amqp.connect(self._conf)
            self._connection = connection
            connection.ensure_connection(max_retries=1)
            channel = connection.channel()
            amqp.dead_letter_queue(self._conf)(channel).declare()
            self._producer = kombu.Producer(channel, on_return=self._on_return)
        return self._producer

    def _close(self) -> None:
        if self._connection is not None:
            amqp.discard(self._connection)
        self._connection = None
        self._producer = None


def describe(message: Any) -> dict[str, Any]:
    """What ``dead-letter list`` shows of a letter, whoever wrote it: never raises."""
    headers = message.headers if isinstance(message.headers, dict) else {}
    body = message.body if isinstance(message.body, bytes | str) else b""
    size = headers.get(SIZE_HEADER)
    return {
        "routing_key": escape.text(headers.get(ROUTING_KEY_HEADER, "?"), 255),
        "reason": escape.text(headers.get(REASON_HEADER, "?"), 1000),
        "bytes": size if isinstance(size, int) and not isinstance(size, bool) else len(body),
        "withheld": headers.get(WITHHELD_HEADER) is True,
    }


def browse(conf: cfg.ConfigOpts, handle: Callable[[Any], bool], limit: int) -> int:
    """Offer each dead letter present now to ``handle``; ack those it settles.

    Every letter is held unacknowledged while browsing, so each is seen once
    and those not settled return to the queue, in their order, when the
    channel closes. Returns how many were settled.
    """
    settled = 0
    with amqp.connect(conf) as connection:
        channel = connection.channel()
        dead_letters = amqp.dead_letter_queue(conf)(channel)
        # declared as the worker declares it: before the first letter it is simply empty
        _name, pending, _consumers = dead_letters.queue_declare()
        held = [
            message
            for message in (dead_letters.get(no_ack=False) for _ in range(min(pending, limit)))
            if message
        ]
        for message in held:
            if handle(message):
                message.ack()
                settled += 1
        channel.close()
    return settled
