"""Values from messages shown safely; repeated warnings summed up."""

import io
import logging

from oslo_config import cfg
from oslo_log import log as oslo_log

from tracker import escape
from tracker.throttle import Throttle

FORGED = "cmp1\n2026-01-01 00:00:00,000 ERROR tracker FORGED-LOG-LINE\x1b[2J\u202e"


def test_control_characters_newlines_and_ansi_are_escaped():
    shown = escape.text(FORGED)
    assert shown == "cmp1\\n2026-01-01 00:00:00,000 ERROR tracker FORGED-LOG-LINE\\x1b[2J\\u202e"
    assert shown.isprintable()


def test_backslashes_are_doubled_so_escapes_cannot_be_faked():
    assert escape.text("a\\nb") == "a\\\\nb"


def test_long_values_are_cut_with_a_count():
    assert escape.text("x" * 10, limit=4) == "xxxx…(+6 chars)"


def test_plain_text_is_left_alone():
    assert escape.text("nova-compute:cmp1.example.org") == "nova-compute:cmp1.example.org"


def _logger(stream):
    """A logger formatting as the console scripts do: oslo.log's text format, data-safe."""
    conf = cfg.ConfigOpts()
    oslo_log.register_options(conf)
    conf([])
    # both formats: a test before may have left an oslo.context request context current
    conf.set_override("logging_default_format_string", "%(levelname)s %(message)s")
    conf.set_override("logging_context_format_string", "%(levelname)s %(message)s")
    conf.set_override("logging_exception_prefix", "TRACE %(name)s ")
    logger = logging.getLogger(f"test-escape-{id(stream)}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(escape.OneLineContextFormatter(project="tracker", version="0", config=conf))
    logger.handlers = [handler]
    logger.propagate = False
    return logger


def test_one_record_stays_on_one_line_even_when_a_caller_forgot_to_escape():
    stream = io.StringIO()
    _logger(stream).warning("host %s", FORGED)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "\x1b" not in stream.getvalue()


def test_traceback_lines_carry_the_exception_prefix_and_are_escaped():
    stream = io.StringIO()
    try:
        raise ValueError(FORGED)
    except ValueError:
        _logger(stream).exception("failed")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("ERROR failed")
    logger_name = f"test-escape-{id(stream)}"
    assert all(line.startswith(f"TRACE {logger_name} ") for line in lines[1:]), lines
    assert any("FORGED-LOG-LINE" in line for line in lines[1:])
    assert "\x1b" not in stream.getvalue() and "\u202e" not in stream.getvalue()


def test_the_summary_of_an_active_exception_is_escaped_too():
    stream = io.StringIO()
    try:
        raise RuntimeError("cmp1\x1b[2J\u202e")
    except RuntimeError:
        _logger(stream).warning("retrying")  # oslo.log appends the active exception's summary
    assert stream.getvalue() == "WARNING retrying: RuntimeError: cmp1\\x1b[2J\\u202e\n"


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_burst_becomes_one_line_then_a_count(caplog):
    caplog.set_level(logging.INFO)
    clock = _Clock()
    throttle = Throttle(logging.getLogger("test-throttle"), interval=60, clock=clock)
    for i in range(1953):
        throttle.log(logging.INFO, "late events dropped", "dropped event %d", i)
    assert [r.getMessage() for r in caplog.records] == ["dropped event 0"]
    clock.now = 61
    throttle.flush()
    assert caplog.records[-1].getMessage() == "1952 more late events dropped in the last 60s"
    clock.now = 200
    throttle.log(logging.INFO, "late events dropped", "dropped event %d", 1953)
    assert caplog.records[-1].getMessage() == "dropped event 1953"


def test_the_next_line_after_the_interval_carries_the_count(caplog):
    caplog.set_level(logging.INFO)
    clock = _Clock()
    throttle = Throttle(logging.getLogger("test-throttle-2"), interval=10, clock=clock)
    throttle.log(logging.WARNING, "k", "one")
    throttle.log(logging.WARNING, "k", "two")
    throttle.log(logging.WARNING, "other", "other kind")
    clock.now = 11
    throttle.log(logging.WARNING, "k", "three")
    assert [r.getMessage() for r in caplog.records] == [
        "one",
        "other kind",
        "three (and 1 more like it in the last 10s)",
    ]
