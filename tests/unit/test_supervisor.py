"""The supervisor of ``[worker] workers`` processes, with real forks of small children."""

import os
import signal
import threading
import time

import psutil

from tests.waiting import wait_for
from tracker.cmd.supervisor import Supervisor, failures_after, restart_delay


def _supervise(tmp_path, run_child, count=2, exited=lambda _index, _why: None):
    """A supervisor run in a thread of this process (its children are forks of it)."""
    stopping = threading.Event()
    supervisor = Supervisor(count, run_child, stopping, shutdown_timeout=5.0, exited=exited)
    result = {}
    thread = threading.Thread(target=lambda: result.update(code=supervisor.run()), daemon=True)
    thread.start()
    return supervisor, stopping, thread, result


def _children():
    return psutil.Process().children()


def _runs(tmp_path, index):
    """The pids process ``index`` ran as, one per start."""
    runs = tmp_path / f"runs-{index}"
    return runs.read_text().split() if runs.exists() else []


def _until_terminated():
    time.sleep(60)  # SIGTERM's default action ends it
    return 0


def test_a_child_that_dies_is_started_again_and_sigterm_stops_them_all(tmp_path):
    def child(index):
        with (tmp_path / f"runs-{index}").open("a") as out:
            out.write(f"{os.getpid()}\n")
        if index == 1 and len(_runs(tmp_path, 1)) == 1:
            return 1  # the first run of process 1 fails
        return _until_terminated()

    told = []
    _supervisor, stopping, thread, result = _supervise(
        tmp_path, child, exited=lambda *said: told.append(said)
    )
    try:
        # process 1 failed once, and was started again after the first restart delay
        wait_for(lambda: len(_runs(tmp_path, 1)) == 2, 10)
        wait_for(lambda: len(_children()) == 2, 5)
        assert len(_runs(tmp_path, 0)) == 1
        pid = _runs(tmp_path, 1)[0]
        assert told == [
            (1, f"worker process 1 (pid {pid}) exited with 1 after 0 s; starting it again in 1 s")
        ]
    finally:
        stopping.set()
        thread.join(20)
    assert result == {"code": 0}
    assert _children() == []


def test_a_child_ending_on_a_configuration_mistake_stops_the_worker_with_2(tmp_path):
    def child(index):
        return 2 if index == 1 else _until_terminated()

    _supervisor, _stopping, thread, result = _supervise(tmp_path, child)
    thread.join(20)
    assert result == {"code": 2}
    assert _children() == []


def test_sighup_is_passed_on_to_every_child(tmp_path):
    def child(index):
        # blocked, SIGHUP waits for sigwait instead of ending the process
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        (tmp_path / f"ready-{index}").touch()
        signal.sigwait({signal.SIGHUP})
        (tmp_path / f"hup-{index}").touch()
        return _until_terminated()

    supervisor, stopping, thread, result = _supervise(tmp_path, child)
    try:
        wait_for(lambda: (tmp_path / "ready-0").exists() and (tmp_path / "ready-1").exists(), 5)
        supervisor.forward(signal.SIGHUP)
        wait_for(lambda: (tmp_path / "hup-0").exists() and (tmp_path / "hup-1").exists(), 5)
    finally:
        stopping.set()
        thread.join(20)
    assert result == {"code": 0}


def test_children_stop_when_the_supervisor_is_killed(tmp_path):
    def child(_index):
        # the supervisor's stopping event, set by the orphan watch
        supervisor_stopping.wait(30)
        return 0

    supervisor_stopping = threading.Event()

    pid = os.fork()
    if pid == 0:  # the supervisor's process
        try:
            Supervisor(2, child, supervisor_stopping, shutdown_timeout=5.0).run()
        finally:
            os._exit(0)
    try:
        wait_for(lambda: len(psutil.Process(pid).children()) == 2, 5)
        orphans = psutil.Process(pid).children()
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        gone, alive = psutil.wait_procs(orphans, timeout=5)
        assert alive == [] and len(gone) == 2
    finally:
        for process in psutil.Process().children(recursive=True):
            process.kill()


def test_the_restart_delay_doubles_to_a_minute_and_a_long_run_starts_the_count_again():
    assert [restart_delay(failures) for failures in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert failures_after(ran=0.5, failures_before=3) == 4
    assert failures_after(ran=59.0, failures_before=6) == 7
    assert failures_after(ran=60.0, failures_before=6) == 1  # it had run a minute: a fresh failure
