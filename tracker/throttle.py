"""Rate-limited log lines: a burst of the same warning becomes one line and a count.

oslo.log's rate-limit filter drops records process-wide without saying how
many of which kind; an operator at 3 a.m. needs the count per kind, so this
small helper keeps one per key.
"""

import dataclasses
import logging
import threading
import time
from collections.abc import Callable


@dataclasses.dataclass
class _Key:
    last: float
    suppressed: int = 0


class Throttle:
    """At most one line per key per ``interval``; the rest are counted and reported."""

    def __init__(
        self, logger: logging.Logger, interval: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, _Key] = {}

    def log(self, level: int, key: str, message: str, *args: object, exc_info: bool = False) -> None:
        """Log now if ``key`` was quiet for ``interval``, else count it."""
        now = self._clock()
        with self._lock:
            state = self._keys.get(key)
            if state is not None and now - state.last < self._interval:
                state.suppressed += 1
                return
            suppressed = state.suppressed if state else 0
            self._keys[key] = _Key(last=now)
        if suppressed:
            message += " (and %d more like it in the last %.0fs)"
            args = (*args, suppressed, self._interval)
        self._logger.log(level, message, *args, exc_info=exc_info)

    def flush(self, level: int = logging.INFO) -> None:
        """Report the counts still pending for keys quiet for ``interval`` (call periodically)."""
        now = self._clock()
        with self._lock:
            due = {
                key: state.suppressed
                for key, state in self._keys.items()
                if state.suppressed and now - state.last >= self._interval
            }
            for key in due:
                self._keys[key] = _Key(last=now)
        for key, count in sorted(due.items()):
            self._logger.log(level, "%d more %s in the last %.0fs", count, key, self._interval)
