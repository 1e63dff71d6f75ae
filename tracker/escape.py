"""Values that came from a message, made safe to show in a log line or a terminal.

A host name, event type or reason is whatever a publisher put on the bus. A
newline in it could forge a whole log record and an ANSI escape could rewrite
the operator's terminal, so every such value goes through :func:`text` before
it is shown, and :class:`OneLineContextFormatter` keeps one record on one line even
when a caller forgot.
"""

import logging
from typing import Any

from oslo_log import formatters

_SHORT = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str) -> str:
    if char in _SHORT:
        return _SHORT[char]
    if char.isprintable():
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def text(value: object, limit: int = 300) -> str:
    """``str(value)`` with control, format and other unprintable characters escaped
    (``\\n``, ``\\x1b``, ``\\u202e``…), backslashes doubled, cut to ``limit`` characters."""
    raw = str(value)
    cut = raw[:limit]
    shown = cut if cut.isprintable() and "\\" not in cut else "".join(map(_escape_char, cut))
    return shown if len(raw) <= limit else f"{shown}…(+{len(raw) - limit} chars)"


class OneLineContextFormatter(formatters.ContextFormatter):
    """oslo.log's text format, where a record's message never spans lines.

    A traceback's lines each start with oslo.log's ``logging_exception_prefix``
    (time, pid, ERROR, logger) and are escaped: no text inside a record can
    start a line that looks like another record.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = text(record.message, limit=10_000)
        # the summary of an active exception, appended by oslo.log to WARNING and above
        summary = getattr(record, "error_summary", "")
        if summary:
            record.error_summary = text(summary, limit=2_000)
        return super().formatMessage(record)

    def formatException(self, ei: Any, *, record: logging.LogRecord | None = None) -> str:
        lines = super().formatException(ei, record=record).split("\n")
        indent = "" if record is not None else "    "  # prefixed by oslo.log, or not
        return "\n".join(indent + text(line, limit=10_000) for line in lines)

    def formatStack(self, stack_info: str) -> str:
        return "\n".join("    " + text(line, limit=10_000) for line in stack_info.splitlines())
