"""What the worker logs of outcomes: one line for a burst of late events, not one each."""

import logging

from tests import factories
from tests.conftest import make_conf
from tracker.bus.monitor import Monitor
from tracker.db.apply import STALE, Outcome
from tracker.metrics import Metrics


def test_a_burst_of_late_events_is_one_info_line_and_all_are_counted(caplog):
    """Issue 7: 1 953 late events once wrote 1 953 INFO lines."""
    caplog.set_level(logging.INFO)
    metrics = Metrics()
    monitor = Monitor(make_conf(), metrics)
    for second in range(1953):
        monitor.outcome(factories.event("update", second, host="cmp1\n2026 ERROR forged"), Outcome(STALE))
    lines = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    assert len(lines) == 1
    assert "\n" not in lines[0] and "cmp1\\n2026 ERROR forged" in lines[0]
    assert metrics["stale"] == 1953
