"""What the worker tells its operator: counters every minute, a health record, outcomes."""

import datetime
import logging
import time
from collections.abc import Callable

from oslo_config import cfg

from tracker import escape, health
from tracker.db.apply import PARKED, STALE, Outcome
from tracker.events.model import FAILURE, InstanceEvent
from tracker.metrics import Metrics
from tracker.throttle import Throttle

LOG = logging.getLogger("tracker.bus.consumer")

_METRICS_INTERVAL = 60.0
_HEALTH_INTERVAL = 5.0


class Monitor:
    """Called on every turn of the consumer loop; does something only when due."""

    def __init__(self, conf: cfg.ConfigOpts, metrics: Metrics) -> None:
        self._conf = conf
        self._metrics = metrics
        # shared with the consumer: repeated warnings are summed up with the counters
        self.throttle = Throttle(LOG, _METRICS_INTERVAL)
        self._last_metrics = time.monotonic()
        self._last_health = 0.0

    def tick(self, pending: int, stalled_for: float, problems: Callable[[], list[str]]) -> None:
        now = time.monotonic()
        if now - self._last_metrics > _METRICS_INTERVAL:
            self._last_metrics = now
            LOG.info("counters: %s", self._metrics.snapshot())
            self.throttle.flush()
        if self._conf.worker.health_file and now - self._last_health > _HEALTH_INTERVAL:
            self._last_health = now
            self._write_health(pending, stalled_for, problems())

    def outcome(self, event: InstanceEvent, outcome: Outcome) -> None:
        """One line per event at DEBUG; late events dropped are summed up at INFO."""
        self._metrics.incr(outcome.status)
        if outcome.status == STALE:
            self.throttle.log(
                logging.INFO,
                "late events dropped as stale",
                "dropped a late instance.%s of %s from %s at %s: older than its kept history",
                escape.text(event.action),
                escape.text(event.instance_uuid),
                escape.text(event.publisher_host),
                event.timestamp,
            )
        for failure, verdict in ((event, outcome), *outcome.adopted):
            if failure.action == FAILURE:
                _log_failure(failure, verdict, adopted=failure is not event)
        if LOG.isEnabledFor(logging.DEBUG):
            LOG.debug(
                "%s instance.%s of %s from %s at %s, request %s (payload host %s/%s), nodes changed: %s",
                outcome.status,
                escape.text(event.action),
                _instances(event, outcome),
                escape.text(event.publisher_host),
                event.timestamp,
                escape.text(event.request_id),
                escape.text(event.host),
                escape.text(event.node),
                list(outcome.changed_nodes),
            )

    def _write_health(self, pending: int, stalled_for: float, problems: list[str]) -> None:
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        record = health.record(
            self._conf.host,
            self._metrics.snapshot(),
            pending,
            now,
            stalled_for=stalled_for,
            problems=problems,
        )
        health.save(self._conf.worker.health_file, record)


def _log_failure(failure: InstanceEvent, outcome: Outcome, adopted: bool) -> None:
    """One INFO line when a Nova failure frees a claim, waits for its request to be
    named, or is adopted by the first event naming it (freeing a claim or not)."""
    exception = failure.failure.exception if failure.failure else None
    where = (escape.text(exception), escape.text(failure.publisher_host), failure.timestamp)
    request = escape.text(failure.request_id)
    if outcome.status == PARKED:
        LOG.info("parked a failure (%s) from %s at %s: no event named its request %s yet", *where, request)
    elif outcome.freed_nodes or adopted:
        LOG.info(
            "a failure (%s) from %s at %s%s freed %s of instance %s, request %s",
            *where,
            ", parked until now," if adopted else "",
            ", ".join(escape.text(node) for node in outcome.freed_nodes) or "no node",
            _instances(failure, outcome),
            request,
        )


def _instances(event: InstanceEvent, outcome: Outcome) -> str:
    """Those the event was folded into: a versioned failure names none itself."""
    return ", ".join(escape.text(uuid) for uuid in outcome.instances or (event.instance_uuid,))
