"""What the worker logs of outcomes: one line for a burst of late events, not one each."""

import dataclasses
import logging

from tests import factories
from tests.conftest import make_conf
from tracker.bus.monitor import Monitor
from tracker.db.apply import STALE, Outcome
from tracker.events import envelope, parse
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


def test_the_per_event_debug_line_carries_novas_request_id_escaped(caplog):
    """Issue 11: an operator follows a request from Nova's logs to the tracker's."""
    caplog.set_level(logging.DEBUG)
    payload = factories.instance_payload("u1", request_id="req-5b6c791d")
    parsed = _parse(factories.message("instance.create.end", payload))
    event = dataclasses.replace(parsed, request_id="req-5b6c791d\n2026 ERROR forged")  # as if unchecked
    Monitor(make_conf(), Metrics()).outcome(event, Outcome("applied", (("cmp1", "cmp1.example.org"),)))
    (line,) = [record.getMessage() for record in caplog.records if record.levelno == logging.DEBUG]
    assert "applied instance.create.end of u1 from cmp1 at " in line
    assert ", request req-5b6c791d\\n2026 ERROR forged (payload host cmp1/cmp1.example.org)" in line


def _parse(inner):
    return parse.parse(envelope.decode(inner, 1 << 20))
