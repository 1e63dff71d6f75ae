"""Liveness: the worker writes a small health record; a probe checks it is fresh.

A worker that is consuming rewrites the record every few seconds. One that
lost RabbitMQ, or hangs, stops rewriting it, so a probe (systemd, Kubernetes
exec probe, monitoring) sees it age: ``tracker-status --check-health``.
"""

import datetime
import json
import logging
import os
import tempfile
from typing import Any

LOG = logging.getLogger(__name__)


def write(path: str, record: dict[str, Any]) -> None:
    """Replace the record atomically, so a probe never reads half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".health-")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(record, out, sort_keys=True)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)  # a full disk must not also fill up with stray files
        raise


def save(path: str, record: dict[str, Any]) -> None:
    """:func:`write`, or one warning if it cannot: the probe then sees the record age."""
    try:
        write(path, record)
    except OSError as error:
        LOG.warning("cannot write the health record %s: %s", path, error)


def record(
    host: str,
    counters: dict[str, int],
    pending: int,
    now: datetime.datetime,
    *,
    stalled_for: float = 0.0,
    problems: list[str] | tuple[()] = (),
) -> dict[str, Any]:
    """``stalled_for``: seconds the slowest batch in progress has run (a lane stuck on a lock
    or a hung database call);
    ``problems``: what stops the worker from making progress, each in one line."""
    return {
        "pid": os.getpid(),
        "host": host,
        "time": now.isoformat(),
        "lanes_pending": pending,
        "stalled_for": round(stalled_for, 1),
        "counters": counters,
        "problems": list(problems),
    }


def paths(health_file: str, workers: int) -> list[str]:
    """The records of a worker's processes: ``health_file`` itself for one process,
    ``<health_file>.<n>`` for each of several (``[worker] workers``)."""
    return [health_file] if workers == 1 else [child_path(health_file, n) for n in range(workers)]


def child_path(health_file: str, index: int) -> str:
    return f"{health_file}.{index}"


def check(path: str, max_age: float, now: datetime.datetime) -> tuple[bool, str]:
    """(healthy, why): the record exists and was written less than ``max_age`` seconds ago."""
    try:
        with open(path, encoding="utf-8") as handle:
            stored = json.load(handle)
        written = datetime.datetime.fromisoformat(stored["time"])
    except (OSError, ValueError, KeyError) as error:
        return False, f"no usable health record at {path}: {error}"
    age = (now - written).total_seconds()
    if age > max_age:
        return False, f"health record is {age:.0f}s old (limit {max_age:.0f}s): the worker is not consuming"
    problems = stored.get("problems") or []
    if problems:
        return False, "; ".join(str(problem) for problem in problems)
    stalled = float(stored.get("stalled_for", 0.0))
    if stalled > max_age:
        pending = stored.get("lanes_pending")
        return False, f"a lane has been on one batch for {stalled:.0f}s with {pending} pending: it is stuck"
    return True, f"worker consuming; record {age:.1f}s old"
