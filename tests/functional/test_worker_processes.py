"""``[worker] workers = 2``: one ``tracker-worker`` command, two consuming processes.

On real RabbitMQ and PostgreSQL, with a backlog published first: both processes
consume it and the result is the oracle's; each writes its own health record;
SIGHUP reaches both; a process killed with SIGKILL is started again and the
rest of the feed counts; SIGTERM stops everything with exit 0.
"""

import json
import random
import signal
import subprocess

import kombu
import psutil
import pytest
from cloudsim import Cloud

from tests.conftest import RABBIT_URL, require
from tests.functional.test_three_workers import (
    _audit,
    _config,
    _prepare,
    _publish_backlog,
    _queue,
    _tool,
    publish,
)
from tests.functional.test_worker_rabbitmq import _delete_entities
from tests.oracle import differences
from tests.waiting import wait_for
from tracker.bus import amqp
from tracker.cmd import common

pytestmark = pytest.mark.functional
PROCESSES = 2


def _received(tmp_path, index):
    path = tmp_path / f"worker-0.health.{index}"
    return json.loads(path.read_text())["counters"].get("received", 0) if path.exists() else 0


def _health(args):
    probe = subprocess.run(
        [_tool("tracker-status"), *args, "--check-health"], check=False, capture_output=True, text=True
    )
    return probe.returncode, probe.stdout


def test_two_processes_share_the_queue_survive_a_kill_and_stop_together(tmp_path, postgresql_url, names):
    require("rabbitmq")
    cloud = Cloud(3, hosts=10)
    messages = cloud.run(60, random.Random(11))
    backlog, rest = messages[: len(messages) * 2 // 3], messages[len(messages) * 2 // 3 :]
    args = _config(tmp_path, 0, postgresql_url, names, f"workers = {PROCESSES}\n")
    db, store = _prepare(postgresql_url, [args], cloud)
    log_path = tmp_path / "worker.log"
    conf = common.parse_args(args)
    try:
        _publish_backlog(conf, backlog)
        with log_path.open("w") as log:
            worker = subprocess.Popen([_tool("tracker-worker"), *args], stdout=log, stderr=log)
        parent = psutil.Process(worker.pid)
        wait_for(lambda: len(parent.children()) == PROCESSES, 10)
        wait_for(lambda: _queue(names["queue"]).message_count == 0, 60, 0.2)
        # both processes took part of the backlog (each one's own health record says so)
        wait_for(lambda: all(_received(tmp_path, index) > 0 for index in range(PROCESSES)), 15, 0.5)
        assert _health(args)[0] == 0, _health(args)[1]

        worker.send_signal(signal.SIGHUP)
        wait_for(lambda: log_path.read_text().count("configuration reloaded") == 1 + PROCESSES, 10)

        victim = parent.children()[0]
        victim.kill()
        # the probe fails at once, naming the process, not when its last record ages
        probes = []

        def probe_names_the_kill():
            probes.append(_health(args))
            return "was killed by SIGKILL" in probes[-1][1]

        wait_for(probe_names_the_kill, 5, 0.1)
        assert probes[-1][0] == 1, probes[-1]
        wait_for(lambda: len(parent.children()) == PROCESSES and victim not in parent.children(), 10)
        publish(conf, rest)
        wait_for(lambda: _queue(names["queue"]).message_count == 0 and not differences(store, cloud), 60, 0.2)
        wait_for(lambda: _health(args)[0] == 0, 15, 0.5)

        children = parent.children()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
        assert not any(child.is_running() for child in children)
        assert differences(store, cloud) == []
        assert _audit(args)[0] == 0, _audit(args)[1]
        text = log_path.read_text()
        assert "Traceback" not in text and "deadlock" not in text.lower()
    finally:
        if worker.poll() is None:
            worker.kill()
        for process in psutil.Process().children(recursive=True):
            process.kill()
        db.dispose()
        _delete_entities(names)


def test_a_configuration_mistake_met_in_the_processes_is_one_line_and_exit_2(tmp_path, postgresql_url, names):
    """Nova's exchange exists as durable, ours is not (amqp_durable_queues differs from Nova's):
    each process meets RabbitMQ's refusal; the command ends as a single process would."""
    require("rabbitmq")
    args = _config(tmp_path, 0, postgresql_url, names, f"workers = {PROCESSES}\n")
    subprocess.run([_tool("tracker-manage"), *args, "db", "sync"], check=True, capture_output=True)
    with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
        kombu.Exchange(names["nova"], type="topic", durable=True)(connection.default_channel).declare()
    try:
        ended = subprocess.run(
            [_tool("tracker-worker"), *args], check=False, capture_output=True, text=True, timeout=60
        )
    finally:
        _delete_entities(names)
    assert ended.returncode == 2
    assert ended.stderr.splitlines() == [
        "tracker-worker: error: a worker process ended on a configuration mistake: "
        "its ERROR line in the log says which"
    ]
    assert "amqp_durable_queues" in ended.stdout
