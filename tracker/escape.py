"""Values that came from a message, made safe to show in a log line or a terminal.

A host name, event type or reason is whatever a publisher put on the bus. A
newline in it could forge a whole log record and an ANSI escape could rewrite
the operator's terminal, so every such value goes through :func:`text` before
it is shown, and :class:`OneLineFormatter` keeps one record on one line even
when a caller forgot.
"""

import logging

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


class OneLineFormatter(logging.Formatter):
    """A record's message never spans lines; a traceback's lines are indented.

    So no text inside a record can start a line that looks like another
    record (records start with their timestamp in the first column).
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = text(record.message, limit=10_000)
        return super().formatMessage(record)

    def formatException(self, ei: object) -> str:
        lines = super().formatException(ei).splitlines()  # type: ignore[arg-type]
        return "\n".join("    " + text(line, limit=10_000) for line in lines)

    def formatStack(self, stack_info: str) -> str:
        return "\n".join("    " + text(line, limit=10_000) for line in stack_info.splitlines())
