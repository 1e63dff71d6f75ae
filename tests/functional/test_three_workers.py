"""Three ``tracker-worker`` processes on one queue; one is killed mid-batch, the others finish.

What a production deployment of several workers must survive: a worker dies
(OOM killer, node loss) while its transaction is open and its deliveries
unacknowledged. PostgreSQL rolls the transaction back when the connection
drops, RabbitMQ redelivers the deliveries to the survivors, and the survivors,
which meanwhile applied the same instances' other events in whatever order
their lanes reached them, must still end exactly at the simulator's oracle,
without a deadlock between the three processes' lock orders.

Each worker has ``prefetch_count = 100`` and ``batch_size = 50`` instead of
1000 and 500: with the defaults, the first worker to connect would take
1 000 of the 1 500 messages of the backlog by itself, and the three would not
really share the queue.

The victim is chosen by freezing a worker (SIGSTOP) and looking: it is
killed only if PostgreSQL shows one of its connections inside a batch's
transaction (past its first statement, before the outbox insert that ends it)
and RabbitMQ shows unacknowledged deliveries on its channels; otherwise it is
resumed and the next one is tried.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import kombu
import psutil
import pytest
import sqlalchemy as sa
from cloudsim import Cloud

from tests.conftest import RABBIT_URL, make_conf, require
from tests.functional.test_worker_rabbitmq import _delete_entities
from tests.oracle import differences, register
from tests.waiting import wait_for
from tracker.bus import amqp
from tracker.cmd import common
from tracker.db.api import Store
from tracker.db.engine import Database

pytestmark = pytest.mark.functional
BIN = os.path.dirname(sys.executable)
WORKERS = 3
INSTANCES = 50  # about 1 500 messages from cloudsim's lifecycle mix
# A lane's transaction starts with the batch's instance rows and ends with the outbox insert;
# the relay's transactions only touch the outbox. BEGIN alone could be either.
_IN_BATCH = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND client_port = ANY(:ports)
  AND xact_start IS NOT NULL AND query NOT ILIKE 'BEGIN%' AND query NOT ILIKE '%capacity_outbox%'
"""


def _tool(name):
    return shutil.which(name, path=BIN)


def _config(tmp_path, number, postgresql_url, names, worker_options=""):
    """``worker_options``: more lines of the ``[worker]`` section."""
    path = tmp_path / f"worker-{number}.conf"
    path.write_text(
        f"[DEFAULT]\ntransport_url = {RABBIT_URL}\nhost = worker-{number}\n"
        f"[database]\nconnection = {postgresql_url}\n"
        f"[nova_notifications]\nexchange = {names['nova']}\nqueue = {names['queue']}\n"
        f"dead_letter_queue = {names['dlq']}\nprefetch_count = 100\n"
        f"[capacity_notifications]\nexchange = {names['tracker']}\n"
        f"[worker]\nbatch_size = 50\nhealth_file = {tmp_path / f'worker-{number}.health'}\n"
        "reconnect_initial_backoff = 0.2\nreconnect_max_backoff = 1.0\n"
        f"{worker_options}"
    )
    return ["--config-file", str(path)]


def _publish_backlog(conf, messages):
    """The queue is declared as the worker declares it, then filled before any worker runs."""
    publish(conf, messages)
    wait_for(lambda: _queue(conf.nova_notifications.queue).message_count == len(messages), 10)


def publish(conf, messages):
    """Nova's messages, to the queue declared as the worker declares it."""
    with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
        amqp.notification_queue(conf)(connection.default_channel).declare()
        producer = kombu.Producer(connection.default_channel)
        for message in messages:
            producer.publish(
                message["body"],
                exchange=amqp.nova_exchange(conf),
                routing_key=message["routing_key"],
                serializer="json",
            )


def _queue(name):
    with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
        return connection.default_channel.queue_declare(name, passive=True)


def _applied(engine):
    with engine.connect() as connection:
        return connection.exec_driver_sql("SELECT count(*) FROM instances").scalar()


def _local_ports(process, remote_port):
    return [
        c.laddr.port
        for c in psutil.Process(process.pid).net_connections("tcp")
        if c.raddr and c.raddr.port == remote_port
    ]


def _in_batch(engine, process):
    with engine.connect() as connection:
        return connection.execute(sa.text(_IN_BATCH), {"ports": _local_ports(process, 5432)}).scalar() > 0


def _unacked(process):
    """Deliveries RabbitMQ handed to this process's channels and still waits an ack for."""

    def rows(*command):
        out = subprocess.run(
            ["rabbitmqctl", "-q", *command], check=True, capture_output=True, text=True
        ).stdout
        return [line.split("\t") for line in out.splitlines() if "\t" in line]

    ports = set(_local_ports(process, 5672))
    connections = {
        pid
        for pid, port in rows("list_connections", "pid", "peer_port")
        if port.isdigit() and int(port) in ports
    }
    return sum(
        int(count)
        for connection, count in rows("list_channels", "connection", "messages_unacknowledged")
        if connection in connections and count.isdigit()
    )


def _kill_one_mid_batch(engine, workers, deadline):
    """SIGKILL the first worker caught (frozen) inside a batch transaction with unacked deliveries."""
    while time.monotonic() < deadline:
        for process in workers:
            process.send_signal(signal.SIGSTOP)
            try:
                if _in_batch(engine, process) and (held := _unacked(process)) > 0:
                    process.kill()
                    process.wait(10)
                    return process, held
            finally:
                if process.poll() is None:
                    process.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError("no worker was caught inside a batch transaction")


def _start(args, log_path):
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process, in the test's finally
    return subprocess.Popen([_tool("tracker-worker"), *args], stdout=log, stderr=log), log


def _prepare(postgresql_url, configs, cloud):
    """Schema and node inventory, as an operator sets them up before the workers start."""
    subprocess.run([_tool("tracker-manage"), *configs[0], "db", "sync"], check=True, capture_output=True)
    conf = make_conf(postgresql_url)
    db = Database.from_conf(conf)
    store = Store(db, conf)
    register(store, cloud)
    return db, store


def _healthy(args):
    """The survivor's own health record (its [worker] health_file) says it is consuming."""
    health = subprocess.run(
        [_tool("tracker-status"), *args, "--check-health"], check=False, capture_output=True, text=True
    )
    return health.returncode == 0, health.stdout + health.stderr


def _stop(processes):
    for process in processes:
        process.send_signal(signal.SIGTERM)
    return [process.wait(30) for process in processes]


def _audit(args):
    audit = subprocess.run(
        [_tool("tracker-manage"), *args, "audit"], check=False, capture_output=True, text=True
    )
    return audit.returncode, audit.stdout + audit.stderr


def _deadlock_lines(tmp_path):
    logs = [(tmp_path / f"worker-{number}.log").read_text() for number in range(WORKERS)]
    return [line for text in logs for line in text.splitlines() if "deadlock" in line.lower()]


def test_three_workers_one_killed_mid_batch_end_at_the_oracle(tmp_path, postgresql_url, names):
    require("rabbitmq")
    cloud = Cloud(3, hosts=10)
    messages = cloud.run(INSTANCES, random.Random(3))
    configs = [_config(tmp_path, number, postgresql_url, names) for number in range(WORKERS)]
    db, store = _prepare(postgresql_url, configs, cloud)
    engine = sa.create_engine(postgresql_url)
    started = []
    try:
        _publish_backlog(common.parse_args(configs[0]), messages)
        started = [_start(args, tmp_path / f"worker-{number}.log") for number, args in enumerate(configs)]
        workers = [process for process, _log in started]
        wait_for(lambda: _applied(engine) > 0, 30)
        assert _queue(names["queue"]).message_count > 0, "the backlog drained before the kill"
        victim, _held = _kill_one_mid_batch(engine, workers, time.monotonic() + 20)
        survivors = [
            (process, args) for process, args in zip(workers, configs, strict=True) if process is not victim
        ]
        wait_for(lambda: _queue(names["queue"]).consumer_count == WORKERS - 1, 10)
        wait_for(lambda: _queue(names["queue"]).message_count == 0 and not differences(store, cloud), 40, 0.2)
        for _process, args in survivors:
            healthy, said = _healthy(args)
            assert healthy, said
        assert _stop([process for process, _args in survivors]) == [0] * (WORKERS - 1)
        assert _queue(names["queue"]).message_count == 0
        assert differences(store, cloud) == []
        assert _audit(configs[0])[0] == 0, _audit(configs[0])[1]
        assert _deadlock_lines(tmp_path) == []
    finally:
        for process, log in started:
            if process.poll() is None:
                process.kill()
                process.wait(10)
            log.close()
        engine.dispose()
        db.dispose()
        _delete_entities(names)
