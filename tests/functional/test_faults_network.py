"""Fault injection, part 3: network faults through ``tests.proxy`` — the database held and
reset, SIGTERM while the database is unreachable, a broker partition. Shared rig and
conventions: ``test_faults``."""

import signal
import subprocess
import time

import pytest
import sqlalchemy as sa

from tests.conftest import require
from tests.functional.test_faults import (
    LOST,
    Rig,
    cloud_stream,
    first_commit,
    mismatches,
    quietly_within,
    verdict,
    wait_until,
)
from tests.oracle import register
from tests.proxy import Proxy

pytestmark = pytest.mark.functional


def _through(proxy, postgresql_url):
    return sa.make_url(postgresql_url).set(port=proxy.port).render_as_string(hide_password=False)


def _struck_mid_stream(rig, cloud):
    assert mismatches(rig.store, cloud) != [], "the fault must strike mid-stream"


# -- 5: the database cut: held 20 s (a partition), then reset -------------------------------------


def test_database_held_then_reset_is_retried_and_nothing_is_dead_lettered(tmp_path, names, postgresql_url):
    require("rabbitmq")
    cloud, stream = cloud_stream(51)
    with (
        Proxy("127.0.0.1", 5432) as proxy,
        Rig(tmp_path, names, postgresql_url, database=_through(proxy, postgresql_url)) as rig,
    ):
        register(rig.store, cloud)
        rig.publish(stream)
        worker = rig.start()
        first_commit(rig)
        proxy.hold()
        _struck_mid_stream(rig, cloud)
        time.sleep(20)
        during = {"alive": worker.alive(), "dead letters": rig.broker.depth(rig.dlq)}
        proxy.reset()
        # refused now: the health check names the database, not only "a lane is stuck"
        said = f"the database postgresql 127.0.0.1:{proxy.port}/{rig.db.engine.url.database} is unreachable"
        named = quietly_within(lambda: said in rig.check_health()[1], 25, 0.5)
        during |= {
            "alive after reset": worker.alive(),
            "dead letters after reset": rig.broker.depth(rig.dlq),
            "health names the outage": named or rig.check_health()[1],
        }
        proxy.forward()
        problems = rig.finish(worker, cloud, within=60)
    expected = {"alive": True, "dead letters": 0, "alive after reset": True, "dead letters after reset": 0}
    if during != expected | {"health names the outage": True}:
        problems.append(f"while the database was cut: {during}")
    verdict(problems)


# -- 6: SIGTERM while the database is unreachable ---------------------------------------------------


def test_sigterm_while_the_database_is_down_exits_in_time_and_loses_nothing(tmp_path, names, postgresql_url):
    require("rabbitmq")
    cloud, stream = cloud_stream(61)
    shutdown_timeout = 5
    with (
        Proxy("127.0.0.1", 5432) as proxy,
        Rig(
            tmp_path, names, postgresql_url, database=_through(proxy, postgresql_url), shutdown_timeout=5
        ) as rig,
    ):
        register(rig.store, cloud)
        rig.publish(stream)
        worker = rig.start()
        first_commit(rig)
        proxy.hold()
        _struck_mid_stream(rig, cloud)
        time.sleep(1.0)  # the lanes are now waiting on the database
        asked = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        try:
            code = worker.process.wait(shutdown_timeout + 25)
        except subprocess.TimeoutExpired:
            code = "none: still running"
        took = time.monotonic() - asked
        print(f"\nSIGTERM with the database held: exit code {code} after {took:.1f}s")
        problems = []
        if code != 0 or took > shutdown_timeout + 5:
            problems.append(
                f"exit code {code} {took:.1f}s after SIGTERM (shutdown_timeout {shutdown_timeout}s)"
            )
        if dead := rig.broker.depth(rig.dlq):
            problems.append(f"{dead} message(s) dead-lettered while the database was down")
        if worker.alive():
            worker.process.kill()
            worker.process.wait(30)
        wait_until(lambda: rig.broker.consumers(rig.queue) == 0, 30, "the first worker gone")
        proxy.forward()
        problems += rig.finish(rig.start(), cloud, within=60)
    verdict(problems)


# -- 7: a broker partition longer than two heartbeats -------------------------------------------------


def test_broker_partition_heals_and_the_backlog_drains(tmp_path, names, postgresql_url):
    require("rabbitmq")
    cloud, stream = cloud_stream(71)
    with (
        Proxy("127.0.0.1", 5672) as proxy,
        Rig(
            tmp_path,
            names,
            postgresql_url,
            transport=f"rabbit://guest:guest@127.0.0.1:{proxy.port}/",
            heartbeat=2,
        ) as rig,
    ):
        register(rig.store, cloud)
        rig.publish(stream)
        worker = rig.start()
        first_commit(rig)
        proxy.hold()
        assert rig.broker.depth(rig.queue) > 0, "the partition must strike mid-stream"
        time.sleep(8)  # four heartbeat intervals
        proxy.forward()
        healed = time.monotonic()
        problems = rig.finish(worker, cloud, within=60)
        print(f"\npartition healed; worker stopped {time.monotonic() - healed:.1f}s later")
    lost = rig.log_text().count(LOST)
    print(f"'{LOST}' lines: {lost}; connections through the proxy: {proxy.accepted}")
    if lost > 10:
        problems.append(f"{lost} '{LOST}' lines: a reconnect loop")
    verdict(problems)
