"""Apply a file of notifications through the worker's own path, without a broker.

Each line is an oslo envelope or a bare message dict, as JSON. Events are
applied in batches of ``batch_size``, as a lane applies what queued up for
it: the verdicts are the same whatever the batching. Poison lines, whether
undecodable or refused by the database, are reported with their line number
and skipped; nothing else stops a replay.
"""

import dataclasses
import logging
from collections.abc import Iterable

from tracker.bus import decide
from tracker.db.api import Store
from tracker.db.apply import PoisonEvent
from tracker.events.model import InstanceEvent
from tracker.metrics import Metrics

LOG = logging.getLogger(__name__)

BATCH_SIZE = 500


@dataclasses.dataclass
class Report:
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    poison: list[tuple[int, str]] = dataclasses.field(default_factory=list)

    def set_aside(self, number: int, reason: str) -> None:
        LOG.warning("line %d set aside: %s", number, reason)
        self.poison.append((number, reason))
        self.metrics.incr("dead_lettered")


def replay(lines: Iterable[str], store: Store, max_bytes: int, batch_size: int = BATCH_SIZE) -> Report:
    report = Report()
    pending: list[tuple[int, InstanceEvent]] = []
    for number, line in enumerate(lines, start=1):
        decision = _decide(number, line, max_bytes, report) if line.strip() else None
        if decision is not None and decision.event is not None:
            pending.append((number, decision.event))
        elif decision is not None and decision.host_event is not None:
            _apply(pending, store, report)  # in order with the instance events before it
            store.apply_host_event(decision.host_event)
            report.metrics.incr("host_events")
        if len(pending) >= batch_size:
            _apply(pending, store, report)
    _apply(pending, store, report)
    report.poison.sort()
    return report


def _decide(number: int, line: str, max_bytes: int, report: Report) -> decide.Decision:
    report.metrics.incr("received")
    decision = decide.decide(line, max_bytes)
    if decision.kind == decide.POISON:
        report.set_aside(number, decision.reason)
    elif decision.kind == decide.IGNORE:
        report.metrics.incr("ignored")
    return decision


def _apply(pending: list[tuple[int, InstanceEvent]], store: Store, report: Report) -> None:
    verdicts = store.apply_batch([event for _number, event in pending])
    for (number, _event), verdict in zip(pending, verdicts, strict=True):
        if isinstance(verdict, PoisonEvent):
            report.set_aside(number, verdict.reason)
        else:
            report.metrics.incr(verdict.status)
    pending.clear()
