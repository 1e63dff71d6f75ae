"""Fault injection over real RabbitMQ and PostgreSQL (issues 7 and 12).

Every case publishes a backlog while no worker runs, then starts the worker
with its real prefetch: one message into an idle consumer hides the bugs. Every
case ends with usage per node and per project equal to the truth (cloudsim's
oracle, or the totals of a create/delete feed), a clean audit and an empty queue.

The worker is observed from outside: the database, queue depths, its log, its
health file and ``tracker-status --check-health``; in-process runs add its
public ``metrics``. This module holds the shared rig and the crash, connection
cut, secret and log-forging cases; ``test_faults_poison`` and
``test_faults_network`` hold the others.
"""

import collections
import contextlib
import datetime
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import kombu
import psutil
import pytest
import sqlalchemy as sa
from cloudsim import Cloud
from oslo_context import context as oslo_context

from tests import factories
from tests.conftest import RABBIT_URL, make_conf, require
from tests.functional.test_worker_rabbitmq import NOVA_DEFAULT_QUEUES, SECRET, _nova_compute_notifier
from tests.oracle import differences, register
from tracker.bus import amqp
from tracker.bus.consumer import Worker
from tracker.cmd import common
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database

pytestmark = pytest.mark.functional
BIN = os.path.dirname(sys.executable)
WORKER = shutil.which("tracker-worker", path=BIN)
STATUS = shutil.which("tracker-status", path=BIN)
INFO = "versioned_notifications.info"
LOST = "RabbitMQ connection lost"
RESOURCES = ("vcpus", "memory_mb", "local_gb")


# -- feeds whose final usage is known ------------------------------------------------------


def notification(event_type, payload, host, when):
    """One versioned notification from ``host``'s nova-compute, as oslo's messagingv2 sends it."""
    inner = factories.message(event_type, payload, publisher=f"nova-compute:{host}", timestamp=when)
    return json.dumps(factories.envelope(inner)).encode()


def feed(count, prefix, hosts=4, delete_every=4):
    """``count`` create.end over ``hosts`` nodes, a delete.end after every ``delete_every``-th
    create, and the usage they leave: ``{"nodes": {(host, node): (vcpus, memory_mb, local_gb,
    vms)}, "projects": {project: (vcpus, memory_mb, local_gb, instances)}}``."""
    bodies = []
    totals = {
        "nodes": collections.defaultdict(lambda: (0, 0, 0, 0)),
        "projects": collections.defaultdict(lambda: (0, 0, 0, 0)),
    }
    for i in range(count):
        host, size = f"{prefix}-cmp{i % hosts}", i % 4 + 1
        node, project = f"{host}.example.org", f"{prefix}-project-{i % 3}"
        flavor = factories.flavor_payload(vcpus=size, memory_mb=512 * size, root_gb=10 * size)
        instance = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}/{i}"))
        when = factories.T0 + datetime.timedelta(milliseconds=i)
        fields = {"host": host, "node": node, "flavor": flavor, "project": project}
        bodies.append(
            notification("instance.create.end", factories.instance_payload(instance, **fields), host, when)
        )
        if delete_every and i % delete_every == 0:
            gone = factories.instance_payload(instance, state="deleted", **fields)
            bodies.append(notification("instance.delete.end", gone, host, when + datetime.timedelta(hours=1)))
            continue
        for kind, key in (("nodes", (host, node)), ("projects", project)):
            totals[kind][key] = tuple(
                a + b for a, b in zip(totals[kind][key], (size, 512 * size, 10 * size, 1), strict=True)
            )
    return bodies, {kind: dict(rows) for kind, rows in totals.items()}


def merged(*expectations):
    return {kind: {k: v for e in expectations for k, v in e[kind].items()} for kind in ("nodes", "projects")}


def usage(store, keep=lambda key: True):
    """What the tracker holds, in ``feed``'s shape; rows at zero left out."""
    nodes = {
        (v["host"], v["node"]): (*(v["resources"][r]["used"] for r in RESOURCES), v["running_vms"])
        for v in store.node_views()
    }
    projects = {
        p["project_id"]: (p["vcpus"], p["memory_mb"], p["local_gb"], p["instances"])
        for p in store.project_usage()
    }
    return {
        kind: {k: v for k, v in rows.items() if any(v) and keep(k)}
        for kind, rows in (("nodes", nodes), ("projects", projects))
    }


def mismatches(store, truth, keep=lambda key: True):
    """[] when the tracker holds exactly ``truth`` (a Cloud's oracle, or ``feed`` totals)."""
    if isinstance(truth, Cloud):
        return differences(store, truth)
    got = usage(store, keep)
    return [
        f"{kind} {key}: tracker {got[kind].get(key)} != expected {truth[kind].get(key)}"
        for kind in ("nodes", "projects")
        for key in sorted(set(got[kind]) | set(truth[kind]), key=str)
        if got[kind].get(key) != truth[kind].get(key)
    ]


def cloud_stream(seed, instances=120):
    """A simulated cloud and its notifications as (routing key, body); 120 instances give
    2 500 to 3 100 messages, more than a prefetch's worth."""
    cloud = Cloud(seed, hosts=6)
    messages = cloud.run(instances, random.Random(seed))
    return cloud, [(m["routing_key"], json.dumps(m["body"]).encode()) for m in messages]


def quietly_within(predicate, timeout, interval=0.1):
    """True once ``predicate()`` holds (checked at least once), False after ``timeout``: lets a
    test report several faults at once instead of stopping at the first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def wait_until(predicate, timeout, what, interval=0.1):
    """Fail with ``what`` (a string, or a function describing the state then) after ``timeout``."""
    if not quietly_within(predicate, timeout, interval):
        raise AssertionError(f"not within {timeout}s: {what() if callable(what) else what}")


def verdict(problems):
    """Fail with every problem found, one per line."""
    assert not problems, "\n  - ".join(["the end state is wrong:", *problems])


def rabbitmqctl(*args, check=True):
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], check=check, capture_output=True, text=True, timeout=60
    )


# -- the rig: broker, database, config file, worker processes ---------------------------------


class Broker:
    """One administrative connection of the test's own."""

    def __init__(self):
        self.connection = kombu.Connection(amqp.broker_urls(RABBIT_URL)[0])
        self.connection.connect()

    def info(self, name):
        with self.connection.channel() as channel:
            return channel.queue_declare(name, passive=True)

    def depth(self, name):
        return self.info(name).message_count

    def consumers(self, name):
        return self.info(name).consumer_count

    def declare(self, *queues):
        with self.connection.channel() as channel:
            for queue in queues:
                queue(channel).declare()

    def publish(self, bodies, exchange, queue, routing_key=INFO):
        """Publish ``bodies`` (bytes, or (routing key, bytes)), then wait until ``queue`` holds them."""
        before = self.depth(queue)
        with self.connection.channel() as channel:
            producer = kombu.Producer(channel)
            for body in bodies:
                key, data = body if isinstance(body, tuple) else (routing_key, body)
                producer.publish(data, exchange=exchange, routing_key=key, content_type="application/json")
        wait_until(
            lambda: self.depth(queue) == before + len(bodies), 60, f"{len(bodies)} published to {queue}"
        )

    def take_all(self, name):
        with self.connection.channel() as channel:
            queue = kombu.Queue(name, no_declare=True)(channel)
            return list(iter(lambda: queue.get(no_ack=True), None))

    def purge(self, name):
        with self.connection.channel() as channel:
            channel.queue_purge(name)

    def delete(self, queues, exchanges):
        with self.connection.channel() as channel:
            for queue in queues:
                channel.queue_delete(queue)
            for exchange in exchanges:
                channel.exchange_delete(exchange)


class WorkerProcess:
    def __init__(self, rig, debug):
        self.rig = rig
        self.backlog = rig.broker.depth(rig.queue)
        with open(rig.log_path, "ab") as log:
            command = [WORKER, *rig.args, *(["--debug"] if debug else [])]
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def wait_started(self):
        def started():
            # consuming now, or consumed already (a worker may pause, cancelling its consumer)
            info = self.rig.broker.info(self.rig.queue)
            return not self.alive() or info.consumer_count > 0 or info.message_count != self.backlog

        wait_until(started, 30, "worker consuming")
        assert self.alive(), self.rig.log_text()[-3000:]

    def alive(self):
        return self.process.poll() is None

    def stop(self, timeout=30.0):
        """SIGTERM; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self):
        self.process.kill()
        self.process.wait(30)
        wait_until(lambda: self.rig.broker.consumers(self.rig.queue) == 0, 30, "the broker noticed the kill")


class Rig:
    """Names, config file, scratch database and broker entities of one test; cleans up all."""

    def __init__(self, tmp_path, names, postgresql_url, transport=RABBIT_URL, database=None, **worker):
        self.names, self.queue, self.dlq = names, names["queue"], names["dlq"]
        self.log_path, self.health_path = tmp_path / "worker.log", tmp_path / "health.json"
        options = {
            "reconnect_initial_backoff": 0.2,
            "reconnect_max_backoff": 1.0,
            "db_retry_initial_backoff": 0.05,
            "db_retry_max_backoff": 1.0,
            "shutdown_timeout": 10,
            "health_file": self.health_path,
        } | worker
        config = tmp_path / "tracker.conf"
        config.write_text(
            f"[DEFAULT]\ntransport_url = {transport}\nhost = faults\n"
            f"[database]\nconnection = {database or postgresql_url}\n"
            f"[nova_notifications]\nexchange = {names['nova']}\nqueue = {self.queue}\n"
            f"dead_letter_queue = {self.dlq}\n"
            f"[capacity_notifications]\nexchange = {names['tracker']}\n"
            "[worker]\n" + "".join(f"{key} = {value}\n" for key, value in options.items())
        )
        self.args = ["--config-file", str(config)]
        self.conf = common.parse_args(self.args)
        direct = make_conf(postgresql_url)
        self.db = Database.from_conf(direct)
        migration.upgrade(self.db.engine)
        self.store = Store(self.db, direct)  # the test's own view, never through a proxy
        self.broker = Broker()
        self.broker.declare(amqp.notification_queue(self.conf), amqp.dead_letter_queue(self.conf))
        self.extra_queues = []
        self.processes = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for worker in self.processes:
            if worker.alive():
                worker.process.kill()
                worker.process.wait(30)
        self.broker.delete(
            [self.queue, self.dlq, *self.extra_queues], [self.names["nova"], self.names["tracker"]]
        )
        self.broker.connection.close()
        self.db.dispose()

    def publish(self, bodies):
        self.broker.publish(bodies, amqp.nova_exchange(self.conf), self.queue)

    def start(self, debug=False):
        worker = WorkerProcess(self, debug)
        self.processes.append(worker)  # killed on exit whatever happens next
        worker.wait_started()
        return worker

    def instances(self):
        with self.db.engine.connect() as connection:
            return connection.exec_driver_sql("SELECT count(*) FROM instances").scalar()

    def drained(self, truth, dead=0, keep=lambda key: True):
        return (
            self.broker.depth(self.queue) == 0
            and (dead is None or self.broker.depth(self.dlq) == dead)
            and not mismatches(self.store, truth, keep)
        )

    def state(self, truth, keep=lambda key: True):
        """For failure messages: queue depths and the first differences from the truth."""
        wrong = mismatches(self.store, truth, keep)
        return (
            f"backlog not drained with exact usage: queue depth {self.broker.depth(self.queue)}, "
            f"dead letters {self.broker.depth(self.dlq)}, {len(wrong)} difference(s) {wrong[:3]}"
        )

    def finish(self, worker, truth, dead=0, keep=lambda key: True, within=60):
        """Wait for the backlog to drain, SIGTERM the worker, and list what is wrong with the
        end state ([] when nothing): all acked, ``dead`` dead letters (None: any number),
        usage exact, clean audit. A list, so that a test can report every fault at once."""
        problems = []
        if not quietly_within(lambda: self.drained(truth, dead, keep), within, 0.25):
            problems.append(f"after {within}s: {self.state(truth, keep)}")
        try:
            code = worker.stop()
        except subprocess.TimeoutExpired:
            code = "none: still running 30s after SIGTERM"
        if code != 0:
            problems.append(f"worker exit code {code}")
        if depth := self.broker.depth(self.queue):
            problems.append(f"{depth} message(s) back in the queue after the worker stopped: never acked")
        if dead is not None and (letters := self.broker.depth(self.dlq)) != dead:
            problems.append(f"{letters} dead letter(s), expected {dead}")
        if wrong := mismatches(self.store, truth, keep):
            problems.append(f"usage differs in {len(wrong)} place(s): {wrong[:3]}")
        if audit := self.store.audit():
            problems.append(f"audit: {audit[:3]}")
        return problems

    def log_bytes(self):
        return self.log_path.read_bytes() if self.log_path.exists() else b""

    def log_text(self):
        return self.log_bytes().decode("utf-8", "replace")

    def health(self):
        try:
            return json.loads(self.health_path.read_text())
        except (OSError, ValueError):
            return {}

    def check_health(self, max_age=30):
        result = subprocess.run(
            [STATUS, *self.args, "--check-health", "--max-age", str(max_age)],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.returncode, result.stdout + result.stderr


class ThreadWorker:
    """``tracker.bus.consumer.Worker`` in a thread, for cases that read its metrics."""

    def __init__(self, rig):
        self.stopping = threading.Event()
        self.worker = Worker(rig.conf, Store(rig.db, rig.conf, self.stopping), self.stopping)
        self.thread = threading.Thread(target=self.worker.run, name="worker", daemon=True)
        self.result = None

    def __enter__(self):
        self.started = time.monotonic()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        """Like ``WorkerProcess.stop``: 0 once the worker returned (waits once, at most 20s)."""
        if self.result is None:
            self.stopping.set()
            self.thread.join(20)
            self.result = "none: still running 20s after stopping" if self.thread.is_alive() else 0
        return self.result


# -- 3, 4: the worker dies, or loses the broker, while it holds unacknowledged work ---------------


def first_commit(rig):
    """Return as soon as the worker committed something: faults strike from here on."""
    wait_until(lambda: rig.instances() > 0, 30, "a first commit", interval=0.01)


def _connections_of(process):
    """RabbitMQ's names (pids) of this process's connections, found by their local ports."""
    sockets = psutil.Process(process.pid).net_connections("tcp")
    ports = {c.laddr.port for c in sockets if c.raddr and c.raddr.port == 5672}
    listing = rabbitmqctl("list_connections", "pid", "peer_port").stdout
    rows = [line.split("\t") for line in listing.splitlines() if "\t" in line]
    return [pid for pid, port in rows if port.isdigit() and int(port) in ports]


def _close(pids):
    """``rabbitmqctl close_connection`` on each, in parallel: the broker drops them at once."""
    closing = [
        subprocess.Popen(["rabbitmqctl", "-q", "close_connection", pid, "test: connection cut"])
        for pid in pids
    ]
    return [command.wait(60) for command in closing]


@pytest.mark.parametrize("fault", ["sigkill", "broker-closes-connections"])
def test_a_fault_mid_stream_loses_and_double_counts_nothing(tmp_path, names, postgresql_url, fault):
    require("rabbitmq")
    cloud, stream = cloud_stream(41)
    # small batches: the whole stream must take longer than rabbitmqctl takes to strike
    with Rig(tmp_path, names, postgresql_url, batch_size=10) as rig:
        register(rig.store, cloud)
        rig.publish(stream)
        worker = rig.start()
        pids = _connections_of(worker.process)
        first_commit(rig)
        if fault == "sigkill":
            worker.kill()
            assert mismatches(rig.store, cloud) != [], "the kill must strike mid-stream"
            worker = rig.start()
        else:
            assert pids and _close(pids) == [0] * len(pids)
            assert mismatches(rig.store, cloud) != [], "the cut must strike mid-stream"
            assert worker.alive(), "the worker must survive its connections' loss"
        verdict(rig.finish(worker, cloud))


# -- 10: no secret leaves ------------------------------------------------------------------------


class _TokenOnTheWire(oslo_context.RequestContext):
    """A context whose token the Notifier sends as ``_context_auth_token``, as Nova's did
    before oslo.messaging redacted it: the tracker must not rely on publishers to strip it."""

    def redacted_copy(self, **kwargs):
        return self


def _hostile_with_token():
    """Poison bodies hiding the token where a naive redaction misses it."""
    payload = factories.instance_payload("u-hostile")
    del payload["nova_object.data"]["uuid"]
    inner = factories.message("instance.create.end", payload) | {"_context_auth_token": SECRET}
    double = {"oslo.version": "2.0", "oslo.message": json.dumps(factories.envelope(inner))}
    escaped = json.dumps(inner).replace('"_context_', '"\\u005fcontext_')
    broken = (
        '{"\\u005fcontext_auth_token": "' + SECRET + '", "event_type": "instance.create.end", "payload": {'
    )
    return [
        json.dumps(double).encode(),
        escaped.encode(),  # valid JSON: the key decodes to _context_auth_token
        broken.encode(),
        json.dumps(factories.envelope(inner)).encode("utf-16-le"),
        ('{"_context_auth_token": "' + SECRET + '", "event_type": ').encode("utf-16-be"),
    ]


def _database_text(engine):
    lines = []
    with engine.connect() as connection:
        for table in sa.inspect(engine).get_table_names():
            for row in connection.exec_driver_sql(f'SELECT * FROM "{table}"'):
                lines.append("\t".join(str(value) for value in row))
    return "\n".join(lines).encode()


def _carries(blob, secret):
    if isinstance(blob, str):  # py-amqp hands over text when the message names its encoding
        blob = blob.encode("utf-8", "surrogatepass")
    return any(secret.encode(encoding) in blob for encoding in ("utf-8", "utf-16-le", "utf-16-be"))


@contextlib.contextmanager
def _credentials(postgresql_url):
    """A PostgreSQL role and a RabbitMQ user with passwords of their own, deleted afterwards."""
    suffix = uuid.uuid4().hex[:10]
    role, db_password = f"faults_{suffix}", f"pgpw-{suffix}-db"
    user, mq_password = f"faults-{suffix}", f"mqpw-{suffix}-mq"
    admin = sa.create_engine(postgresql_url, isolation_level="AUTOCOMMIT")

    def grant():
        with admin.connect() as connection:
            connection.exec_driver_sql(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
            connection.exec_driver_sql(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")

    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{db_password}'")
        rabbitmqctl("add_user", user, mq_password)
        rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        database = sa.make_url(postgresql_url).set(username=role, password=db_password)
        yield {
            "database": database.render_as_string(hide_password=False),
            "transport": f"rabbit://{user}:{mq_password}@127.0.0.1:5672/",
            "user": user,
            "passwords": (db_password, mq_password),
            "grant": grant,
        }
    finally:
        rabbitmqctl("delete_user", user, check=False)
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP OWNED BY {role}")
            connection.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()


def _close_connections_of_user(user):
    listing = rabbitmqctl("list_connections", "user", "pid").stdout.splitlines()
    for pid in [line.split("\t")[1] for line in listing if line.startswith(user + "\t")]:
        rabbitmqctl("close_connection", pid, "test: a reconnect, with the password at hand", check=False)


def test_no_secret_leaves_by_dead_letter_database_or_log(tmp_path, names, postgresql_url):
    require("rabbitmq")
    good = [factories.instance_payload(str(uuid.uuid5(uuid.NAMESPACE_URL, f"secret/{i}"))) for i in range(3)]
    expected = {
        "nodes": {("cmp1", "cmp1.example.org"): (6, 6144, 60, 3)},
        "projects": {"6f70656e737461636b20342065766572": (6, 6144, 60, 3)},
    }
    bad = factories.instance_payload("u-bad")
    del bad["nova_object.data"]["uuid"]
    hostile = _hostile_with_token()
    with (
        _credentials(postgresql_url) as secrets,
        Rig(tmp_path, names, postgresql_url, secrets["transport"], secrets["database"]) as rig,
    ):
        secrets["grant"]()
        rig.extra_queues += [f"{names['queue']}-wire", *NOVA_DEFAULT_QUEUES]
        wire = kombu.Queue(rig.extra_queues[0], exchange=amqp.nova_exchange(rig.conf), routing_key=INFO)
        rig.broker.declare(wire)
        transport, notifier = _nova_compute_notifier(names, tmp_path)
        context = _TokenOnTheWire(auth_token=SECRET, user_id="fake", project_id="p1")
        for payload in [*good, bad]:
            notifier.info(context, "instance.create.end", payload)
        transport.cleanup()
        assert _carries(rig.broker.take_all(wire.name)[0].body, SECRET), "the token must be on the wire"
        rig.publish(hostile)

        worker = rig.start(debug=True)
        _close_connections_of_user(secrets["user"])
        problems = rig.finish(worker, expected, dead=1 + len(hostile))
        leaks = [
            f"token in dead letter {letter.headers.get('x-tracker-reason')!r}: {letter.body[:300]!r}"
            for letter in rig.broker.take_all(rig.dlq)
            if _carries(letter.body, SECRET) or _carries(json.dumps(letter.headers, default=str), SECRET)
        ]
        if _carries(_database_text(rig.db.engine), SECRET):
            leaks.append("token in the database")
    log = rig.log_bytes()
    if _carries(log, SECRET):
        leaks.append("token in the worker's log")
    leaks += [
        f"password {password} in the worker's log"
        for password in secrets["passwords"]
        if password.encode() in log
    ]
    verdict(leaks + problems)


# -- 11: log forging ------------------------------------------------------------------------------

FORGED = "2026-01-01 00:00:00,000 ERROR tracker FORGED-LOG-LINE"
ESC = b"\x1b"


def _calm(key):
    """Nodes and projects of the well-behaved feed; the hostile ones may or may not count."""
    return not str(key).startswith(("('evil", "hostile"))


def test_values_from_messages_cannot_forge_log_lines_or_drive_the_terminal(tmp_path, names, postgresql_url):
    require("rabbitmq")
    evil = f"\n{FORGED}\x1b[2J"
    good, expected = feed(40, "calm")
    hostile_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, "hostile"))
    fields = {
        "project": "hostile-project",
        "flavor": factories.flavor_payload(vcpus=1, memory_mb=512, root_gb=1),
    }
    no_flavor = factories.instance_payload("u-noflavor" + evil, host="evil-4", node="evil-4", **fields)
    del no_flavor["nova_object.data"]["flavor"]
    at = factories.T0
    hostile = [
        notification(
            "instance.create.end",
            factories.instance_payload("u-1" + evil, host="evil-1" + evil, node="evil-1" + evil, **fields),
            "evil-1" + evil,
            at,
        ),
        notification(
            "instance.create.end",
            factories.instance_payload(
                hostile_uuid, host="evil-2" + evil, node="evil-2\r\n" + FORGED, **fields
            ),
            "evil-2\r\n" + FORGED,
            at,
        ),
        notification(
            "instance.create.end" + evil,
            factories.instance_payload("u-3", host="evil-3", **fields),
            "evil-3",
            at,
        ),
        notification("instance.create.end", no_flavor, "evil-4", at),
    ]
    with Rig(tmp_path, names, postgresql_url) as rig:
        rig.publish([*hostile[:2], *good, *hostile[2:]])
        worker = rig.start(debug=True)
        problems = rig.finish(worker, expected, dead=None, keep=_calm)
        odd = usage(rig.store, lambda key: not _calm(key))
        if any(vms > 1 for *_sizes, vms in odd["nodes"].values()):
            problems.append(f"a hostile instance counted twice: {odd}")
    log = rig.log_bytes()
    forged = [line for line in re.split(rb"\r\n|\r|\n", log) if line.startswith(FORGED.encode())]
    escapes = log.count(ESC)
    if forged or escapes:
        problems.append(f"{len(forged)} forged line(s) and {escapes} raw ESC byte(s) in the log")
    verdict(problems)
