"""``[worker] workers`` processes on one queue, the way oslo.service's ProcessLauncher
runs an OpenStack service's ``workers``: fork them, restart one that dies, pass
SIGTERM and SIGHUP on.

Why processes: Python's GIL binds one worker to one core. Draining a backlog,
one process used 90 % of a core while PostgreSQL and RabbitMQ left the
other core mostly idle (tools/bench). Correctness does not depend on the count:
across processes the database's row locks and the node generation
compare-and-swap serialize each node (tests/functional/test_three_workers.py).

Why not oslo.service itself: it requires eventlet (and Paste, Routes, Yappi),
which the tracker does not import (tests/functional/test_packaging.py).
"""

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from tracker.errors import ConfigError

LOG = logging.getLogger(__name__)

# How often the supervisor looks for children that exited, and a child for a parent that did.
_POLL = 0.2
# A child that dies is restarted after a delay doubling from the first to the last figure,
# as kombu's ConsumerMixin limits its restarts; one that ran this long starts the count again.
_RESTART_FIRST = 1.0
_RESTART_MAX = 60.0
_STABLE_AFTER = 60.0
# A child's exit status ConfigError.exit_code (2) means, as for every tracker command, that the
# operator must fix the configuration. Restarting cannot help; the whole worker stops with it
# (the systemd unit's RestartPreventExitStatus=2).
_CONFIGURATION = ConfigError.exit_code
# Beyond [worker] shutdown_timeout: the time a child takes to close its connections.
_CLOSE_MARGIN = 10.0


@dataclasses.dataclass
class _Child:
    index: int
    started: float
    failures: int = 0


def restart_delay(failures: int) -> float:
    """Seconds before starting again a child that failed ``failures`` times in a row."""
    return min(_RESTART_MAX, _RESTART_FIRST * 2.0 ** max(failures - 1, 0))


def failures_after(ran: float, failures_before: int) -> int:
    """A child's failures in a row once it ended after running ``ran`` seconds: one that ran
    long enough starts the count again."""
    return 1 if ran >= _STABLE_AFTER else failures_before + 1


class Supervisor:
    """Runs ``run_child(index)`` in ``count`` forked processes until ``stopping`` is set;
    ``exited(index, why)`` learns of each one that ended and will be started again."""

    def __init__(
        self,
        count: int,
        run_child: Callable[[int], int],
        stopping: threading.Event,
        shutdown_timeout: float,
        exited: Callable[[int, str], None] = lambda _index, _why: None,
    ) -> None:
        self._count = count
        self._run_child = run_child
        self._exited_hook = exited
        self._stopping = stopping
        self._shutdown_timeout = shutdown_timeout
        self._children: dict[int, _Child] = {}
        # index -> (when to start it again, failures so far)
        self._restarts: dict[int, tuple[float, int]] = {}
        self._exit_code = 0

    def run(self) -> int:
        """0 once stopped, 2 if a child ended on a configuration mistake."""
        for index in range(self._count):
            self._start(index, failures=0)
        while not self._stopping.is_set():
            self._reap()
            self._restart_due()
            self._stopping.wait(_POLL)
        self._stop_children()
        return self._exit_code

    def forward(self, signum: int) -> None:
        """Pass a signal (SIGHUP: reload) on to every child."""
        for pid in list(self._children):
            _signal(pid, signum)

    def _start(self, index: int, failures: int) -> None:
        parent = os.getpid()  # before the fork: a child reading getppid() could see init's already
        # Forked while the parent's only other thread (SIGHUP's) waits on an event: the child
        # starts with the one thread that forked, and starts its own.
        try:
            pid = os.fork()
        except OSError as error:  # no process left to the unit (systemd's TasksMax), no memory
            failures += 1
            self._restarts[index] = (time.monotonic() + restart_delay(failures), failures)
            LOG.error(
                "cannot start worker process %d: %s; trying again in %.0f s",
                index,
                error,
                restart_delay(failures),
            )
            return
        if pid == 0:  # pragma: no cover - the child's side ends in os._exit, which coverage cannot see
            os._exit(self._child(index, parent))
        self._children[pid] = _Child(index, time.monotonic(), failures)
        LOG.info("started worker process %d (pid %d)", index, pid)

    def _child(self, index: int, parent: int) -> int:
        threading.Thread(target=_stop_when_orphaned, args=(parent, self._stopping), daemon=True).start()
        try:
            return self._run_child(index)
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:  # the child's last word, then its exit status
            LOG.exception("worker process %d failed", index)
            return 1
        finally:
            logging.shutdown()

    def _reap(self) -> None:
        while self._children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self._children.pop(pid, None)
            if child is not None:
                self._exited(pid, child, os.waitstatus_to_exitcode(status))

    def _exited(self, pid: int, child: _Child, code: int) -> None:
        if self._stopping.is_set():
            return
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        if code == _CONFIGURATION:
            LOG.error(
                "worker process %d (pid %d) %s: a configuration mistake; stopping",
                child.index,
                pid,
                how,
            )
            self._exit_code = _CONFIGURATION
            self._stopping.set()
            return
        ran = time.monotonic() - child.started
        failures = failures_after(ran, child.failures)
        delay = restart_delay(failures)
        why = (
            f"worker process {child.index} (pid {pid}) {how} after {ran:.0f} s; "
            f"starting it again in {delay:.0f} s"
        )
        LOG.error("%s", why)
        self._restarts[child.index] = (time.monotonic() + delay, failures)
        self._exited_hook(child.index, why)

    def _restart_due(self) -> None:
        now = time.monotonic()
        for index, (when, failures) in list(self._restarts.items()):
            if when <= now:
                del self._restarts[index]
                self._start(index, failures)

    def _stop_children(self) -> None:
        """SIGTERM each child, which finishes its in-flight batches; SIGKILL what is left after
        [worker] shutdown_timeout (its unacknowledged messages go back to the queue)."""
        self.forward(signal.SIGTERM)
        deadline = time.monotonic() + self._shutdown_timeout + _CLOSE_MARGIN
        while self._children and time.monotonic() < deadline:
            self._reap()
            time.sleep(_POLL)
        for pid, child in self._children.items():
            LOG.warning("worker process %d (pid %d) did not stop in time: killing it", child.index, pid)
            _signal(pid, signal.SIGKILL)
        for pid in self._children:
            os.waitpid(pid, 0)
        self._children.clear()


def _signal(pid: int, signum: int) -> None:
    # a child that exited meanwhile: the next reap collects it
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _stop_when_orphaned(parent: int, stopping: threading.Event) -> None:
    """A child whose supervisor died (SIGKILL, OOM) stops, as a worker told SIGTERM does:
    whoever restarts the supervisor starts its own children."""
    while not stopping.wait(_POLL):
        if os.getppid() != parent:
            LOG.warning("the supervisor (pid %d) is gone: stopping", parent)
            stopping.set()
