"""The real ``tracker-worker`` process at start and under SIGHUP: a database down at
start is waited for, as the broker is; SIGHUP reloads the log level."""

import itertools
import logging
import pathlib
import signal
import time

import kombu
import pytest

from tests.conftest import RABBIT_URL
from tests.functional.test_faults import INFO, Rig, ThreadWorker, WorkerProcess, feed, verdict, wait_until
from tests.functional.test_faults_network import _through
from tests.proxy import Proxy
from tracker.bus import amqp

pytestmark = pytest.mark.functional


@pytest.mark.parametrize("outage", ["refused", "held"])
def test_a_worker_started_with_the_database_down_catches_up_once_it_is_up(
    tmp_path, names, postgresql_url, outage
):
    bodies, truth = feed(40, "dbdown")
    with (
        Proxy("127.0.0.1", 5432) as proxy,
        Rig(tmp_path, names, postgresql_url, database=_through(proxy, postgresql_url)) as rig,
    ):
        rig.publish(bodies)
        # refused: every connection is closed at once; held: a partition, silence
        proxy.reset() if outage == "refused" else proxy.hold()
        worker = WorkerProcess(rig, debug=False)
        rig.processes.append(worker)
        where = f"database postgresql 127.0.0.1:{proxy.port}/"
        wait_until(
            lambda: f"{where}" in rig.log_text() and "retrying in" in rig.log_text(), 40, "a retry line"
        )
        time.sleep(0.5)
        assert worker.alive(), rig.log_text()[-2000:]
        assert rig.instances() == 0 and rig.broker.consumers(rig.queue) == 0  # waits, consumes nothing
        proxy.forward()
        verdict(rig.finish(worker, truth))
        log = rig.log_text()
    assert "transient failure" in log and where in log
    assert "Traceback" not in log


def test_sighup_reloads_the_log_level_and_keeps_consuming(tmp_path, names, postgresql_url):
    first, truth_first = feed(4, "hup1", delete_every=0)
    second, truth_second = feed(4, "hup2", delete_every=0)
    with Rig(tmp_path, names, postgresql_url) as rig:
        config = rig.args[1]
        rig.publish(first)
        worker = rig.start()
        wait_until(lambda: rig.instances() == 4, 30, "the first events applied")
        assert "instance.create.end of" not in rig.log_text()  # no per-event line at INFO

        # a bad value first: one line, and the reload thread lives on for the next SIGHUP
        original = pathlib.Path(config).read_text()
        pathlib.Path(config).write_text(original + "[DEFAULT]\ndebug = abc\n")
        worker.process.send_signal(signal.SIGHUP)
        refused = "configuration not reloaded: argument --debug: Invalid Boolean value: abc; the previous"
        wait_until(lambda: refused in rig.log_text(), 20, lambda: rig.log_text()[-2000:])
        pathlib.Path(config).write_text(original + "[DEFAULT]\ndebug = true\n")
        worker.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "configuration reloaded; debug is True" in rig.log_text(), 20, "the reload")
        _publish_to_a_running_worker(rig, second)
        wait_until(lambda: rig.instances() == 8, 30, "the second events applied")
        wait_until(lambda: "applied instance.create.end of" in rig.log_text(), 10, "per-event DEBUG lines")
        assert worker.alive()
        log = rig.log_text()
        assert "received SIGHUP: reloading " + config in log
        assert "Traceback" not in log
        verdict(rig.finish(worker, {k: {**truth_first[k], **truth_second[k]} for k in truth_first}))


def _publish_to_a_running_worker(rig, bodies):
    """Without waiting for the queue to hold them: the worker takes them at once."""
    with rig.broker.connection.channel() as channel:
        producer = kombu.Producer(channel)
        for body in bodies:
            producer.publish(
                body, exchange=amqp.nova_exchange(rig.conf), routing_key=INFO, content_type="application/json"
            )


def test_sessions_refused_by_the_broker_restart_with_a_bounded_growing_delay(
    tmp_path, names, postgresql_url, caplog
):
    """Issue 11: a refused queue declaration once made the worker reconnect 1 664 times in 2 s."""
    caplog.set_level(logging.WARNING, logger="tracker.bus.consumer")
    with Rig(tmp_path, names, postgresql_url) as rig:
        rig.broker.delete([rig.queue], [])
        holder = kombu.Connection(amqp.broker_urls(RABBIT_URL)[0])
        # another connection's exclusive queue of our name: RabbitMQ refuses our declaration (405)
        kombu.Queue(rig.queue, exclusive=True)(holder.default_channel).declare()
        with ThreadWorker(rig) as running:
            time.sleep(4.0)
            refusals = [r.created for r in caplog.records if "RESOURCE_LOCKED" in r.getMessage()]
            assert not running.worker.consuming.is_set()
            holder.close()  # its exclusive queue goes with it: the next session consumes
            wait_until(running.worker.consuming.is_set, 10, "consuming once the declaration is accepted")
    gaps = [b - a for a, b in itertools.pairwise(refusals)]
    # reconnect_initial_backoff 0.2 doubling to reconnect_max_backoff 1.0: 0.2, 0.4, 0.8, 1.0, 1.0…
    assert 3 <= len(refusals) <= 8, refusals
    assert gaps[0] >= 0.15 and gaps[1] > gaps[0] * 1.5 and max(gaps) < 1.0 + 1.0, gaps
