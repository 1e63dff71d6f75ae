"""Apply a file of notifications through the worker's own path, without a broker.

Each line is an oslo envelope or a bare message dict, as JSON. Poison lines
are reported with their line number and skipped; nothing else stops a replay.
"""

import dataclasses
import logging
from collections.abc import Iterable

from tracker.bus import decide
from tracker.db.api import Store
from tracker.metrics import Metrics

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class Report:
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    poison: list[tuple[int, str]] = dataclasses.field(default_factory=list)


def replay(lines: Iterable[str], store: Store, max_bytes: int) -> Report:
    report = Report()
    for number, line in enumerate(lines, start=1):
        if line.strip():
            _replay_line(number, line, store, max_bytes, report)
    return report


def _replay_line(number: int, line: str, store: Store, max_bytes: int, report: Report) -> None:
    report.metrics.incr("received")
    decision = decide.decide(line, max_bytes)
    if decision.kind == decide.POISON:
        LOG.warning("line %d set aside: %s", number, decision.reason)
        report.poison.append((number, decision.reason))
        report.metrics.incr("dead_lettered")
    elif decision.kind == decide.IGNORE:
        report.metrics.incr("ignored")
    elif decision.event is not None:
        report.metrics.incr(store.apply(decision.event).status)
