"""The real ``tracker-worker`` process: broker connection loss, and SIGTERM."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import kombu
import psutil
import pytest
import sqlalchemy as sa

from tests import factories
from tests.conftest import RABBIT_URL, require
from tests.functional.test_worker_rabbitmq import _delete_entities
from tests.waiting import wait_for
from tracker.bus import amqp
from tracker.cmd import common

pytestmark = pytest.mark.functional
WORKER = shutil.which("tracker-worker", path=os.path.dirname(sys.executable))


@pytest.fixture
def worker_config(tmp_path, postgresql_url, names):
    path = tmp_path / "tracker.conf"
    path.write_text(
        f"[DEFAULT]\ntransport_url = {RABBIT_URL}\n"
        f"[database]\nconnection = {postgresql_url}\n"
        f"[nova_notifications]\nexchange = {names['nova']}\nqueue = {names['queue']}\n"
        f"dead_letter_queue = {names['dlq']}\n"
        f"[capacity_notifications]\nexchange = {names['tracker']}\n"
        "[worker]\nreconnect_initial_backoff = 0.2\nreconnect_max_backoff = 1.0\n"
    )
    args = ["--config-file", str(path)]
    subprocess.run(
        [shutil.which("tracker-manage", path=os.path.dirname(sys.executable)), *args, "db", "sync"],
        check=True,
        capture_output=True,
    )
    yield args
    _delete_entities(names)


def _start(args, log):
    process = subprocess.Popen([WORKER, *args], stderr=log, stdout=log)
    wait_for(lambda: "consuming" in pathlib.Path(log.name).read_text(), 30.0)
    return process


def _publish(conf, count, first=0):
    with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
        producer = kombu.Producer(connection.default_channel)
        for i in range(first, first + count):
            body = factories.envelope(
                factories.message("instance.create.end", factories.instance_payload(f"u-{i}"))
            )
            producer.publish(
                json.dumps(body),
                exchange=amqp.nova_exchange(conf),
                routing_key="versioned_notifications.info",
                content_type="application/json",
            )


def _instances(url):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql("SELECT running_vms FROM compute_nodes").scalar() or 0
    finally:
        engine.dispose()


def _queue_depth(name):
    with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
        return connection.default_channel.queue_declare(name, passive=True).message_count


def _close_connections_of(process):
    """What a broker restart or a network cut does to the worker: the broker drops its
    connections (only this process's, found by their local ports)."""
    ports = {
        c.laddr.port
        for c in psutil.Process(process.pid).net_connections("tcp")
        if c.raddr and c.raddr.port == 5672
    }
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "peer_port"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [line.split("\t") for line in listing.splitlines() if "\t" in line]
    pids = [pid for pid, port in rows if port.isdigit() and int(port) in ports]
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test: connection cut"], check=True)
    return len(pids)


def test_worker_reconnects_after_losing_the_broker_connection(worker_config, postgresql_url, tmp_path):
    require("rabbitmq")
    conf = common.parse_args(worker_config)
    with open(tmp_path / "worker.log", "w") as log:
        process = _start(worker_config, log)
        try:
            _publish(conf, 5)
            wait_for(lambda: _instances(postgresql_url) == 5, 30.0)
            assert _close_connections_of(process) >= 1
            wait_for(lambda: pathlib.Path(log.name).read_text().count("consuming") >= 2, 30.0)
            _publish(conf, 5, first=5)
            wait_for(lambda: _instances(postgresql_url) == 10, 30.0)
            assert process.poll() is None, "the worker must survive a lost connection"
        finally:
            process.terminate()
            process.wait(30)
    text = (tmp_path / "worker.log").read_text()
    assert "RabbitMQ connection lost" in text
    assert "guest:guest" not in text  # the password never reaches the log


def test_sigterm_finishes_in_flight_work_acks_and_exits_cleanly(
    worker_config, postgresql_url, tmp_path, names
):
    require("rabbitmq")
    conf = common.parse_args(worker_config)
    with open(tmp_path / "worker.log", "w") as log:
        process = _start(worker_config, log)
        _publish(conf, 300)
        wait_for(lambda: _instances(postgresql_url) > 0, 30.0)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    text = (tmp_path / "worker.log").read_text()
    assert "received SIGTERM" in text and "worker stopped" in text
    applied = _instances(postgresql_url)
    # every message is either applied (and acked) or still queued for the next worker: none lost
    assert applied + _queue_depth(names["queue"]) == 300
