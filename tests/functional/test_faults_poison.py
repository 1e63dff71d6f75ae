"""Fault injection, part 2: poison backlogs, a refusing dead-letter queue, a 45 MB body,
and head-of-line blocking. Shared rig and conventions: ``test_faults``."""

import hashlib
import json
import re
import time
import zlib

import pytest
from cloudsim import inner

from tests import factories
from tests.conftest import require
from tests.functional.test_faults import (
    INFO,
    LOST,
    Rig,
    ThreadWorker,
    cloud_stream,
    feed,
    merged,
    mismatches,
    quietly_within,
    rabbitmqctl,
    verdict,
)
from tests.oracle import register
from tests.proxy import Proxy

pytestmark = pytest.mark.functional


def poison(i):
    """Four kinds, in turn: a versioned payload without uuid, broken JSON, a JSON array, and
    an object that is no envelope."""
    kind = i % 4
    if kind == 0:
        payload = factories.instance_payload(f"p-{i}")
        del payload["nova_object.data"]["uuid"]
        return json.dumps(factories.envelope(factories.message("instance.create.end", payload))).encode()
    if kind == 1:
        return b'{"oslo.version": "2.0", "oslo.message": "{\\"event_type\\": \\"instance.' + str(i).encode()
    if kind == 2:
        return json.dumps(["not", "an", "envelope", i]).encode()
    return json.dumps({"hello": "world", "number": i}).encode()


def mix(good, bad, order):
    if order == "poison-first":
        return bad + good
    if order == "poison-last":
        return good + bad
    spread = [((i + 1) / (len(good) + 1), 0, body) for i, body in enumerate(good)]
    spread += [((i + 0.5) / len(bad), 1, body) for i, body in enumerate(bad)]
    return [body for *_key, body in sorted(spread, key=lambda item: item[:2])]


# -- 1: a poison backlog drains, exactly the poison is dead-lettered, the good all count ----------
# The real worker process: a worker thread wedged in a re-entrant publish would outlive its
# test inside pytest (and has crashed pytest itself); a process is killed with its rig.


@pytest.mark.parametrize("order", ["poison-first", "interleaved", "poison-last"])
@pytest.mark.parametrize("poison_count", [5, 100, 1000])
def test_poison_backlog_drains_and_dead_letters_exactly_the_poison(
    tmp_path, names, postgresql_url, poison_count, order
):
    require("rabbitmq")
    good, expected = feed(320, "good")  # 400 messages: 320 create.end, 80 delete.end
    backlog = mix(good, [poison(i) for i in range(poison_count)], order)
    with Rig(tmp_path, names, postgresql_url) as rig:
        rig.publish(backlog)
        worker = rig.start()
        started = time.monotonic()
        drained = quietly_within(lambda: rig.drained(expected, poison_count), 60, 0.1)
        took = time.monotonic() - started
        print(f"\n{poison_count} poison {order}: drained={drained}, {took:.1f}s after the worker started")
        verdict(rig.finish(worker, expected, dead=poison_count, within=0))


def _corrupt(message, ordinal):
    """Every other one loses its uuid; the rest carry an inner message cut in half."""
    body = dict(message["body"])
    if ordinal % 2:
        notification = inner(message)
        del notification["payload"]["nova_object.data"]["uuid"]
        body["oslo.message"] = json.dumps(notification)
    else:
        body["oslo.message"] = body["oslo.message"][: len(body["oslo.message"]) // 2]
    return json.dumps(body).encode()


def test_corrupt_instance_updates_in_a_cloud_stream_are_dead_lettered(tmp_path, names, postgresql_url):
    require("rabbitmq")
    cloud, stream = cloud_stream(31)
    backlog, corrupted, due = [], 0, False
    for n, (message, (key, body)) in enumerate(zip(cloud.messages, stream, strict=True)):
        due = due or n % 150 == 0  # 1 in 150: the first instance.update from there on
        if due and inner(message)["event_type"] == "instance.update":
            due, corrupted = False, corrupted + 1
            backlog.append((key, _corrupt(message, corrupted)))
        else:
            backlog.append((key, body))
    assert corrupted >= 10
    with Rig(tmp_path, names, postgresql_url) as rig:
        register(rig.store, cloud)
        rig.publish(backlog)
        verdict(rig.finish(rig.start(), cloud, dead=corrupted))


# -- 2: the dead-letter queue refuses, then accepts again --------------------------------------


def _dead_letter_lines(log, dlq):
    """ERROR/WARNING lines naming the dead-letter queue or a refusal: state changes and
    rate-limited summaries are few, a line per message is not."""
    about = re.compile(rf"refus|reject|{re.escape(dlq)}", re.IGNORECASE)
    return [
        line for line in log.splitlines() if (" ERROR " in line or " WARNING " in line) and about.search(line)
    ]


def test_a_refusing_dead_letter_queue_is_reported_and_then_drained(tmp_path, names, postgresql_url):
    require("rabbitmq")
    good, expected = feed(240, "refused")
    policy = f"faults-{names['dlq']}"
    with (
        Proxy("127.0.0.1", 5672) as proxy,
        Rig(
            tmp_path, names, postgresql_url, transport=f"rabbit://guest:guest@127.0.0.1:{proxy.port}/"
        ) as rig,
    ):
        try:
            limit = json.dumps({"max-length": 3, "overflow": "reject-publish"})
            rabbitmqctl("set_policy", "--apply-to", "queues", policy, f"^{re.escape(rig.dlq)}$", limit)
            rig.broker.publish([b"the operator's own"] * 3, "", rig.dlq, routing_key=rig.dlq)  # full
            rig.publish(mix(good, [poison(i) for i in range(10)], "interleaved"))
            worker = rig.start()

            problems = []
            if not quietly_within(lambda: mismatches(rig.store, expected) == [], 30, 0.25):
                problems.append(f"the good messages did not all count meanwhile: {rig.state(expected)}")
            reported = quietly_within(lambda: rig.dlq in " ".join(rig.health().get("problems") or []), 15)
            code, says = rig.check_health()
            refusing = {
                "alive": worker.alive(),
                "connections": proxy.accepted,
                "dead letters": rig.broker.depth(rig.dlq),
                "health file names the queue": reported,
                "check-health exit code": code,
                "check-health names the queue": rig.dlq in says,
                "log lines": len(_dead_letter_lines(rig.log_text(), rig.dlq)),
            }
            print(f"\nwhile the dead-letter queue refuses: {refusing}")
            if not (refusing["alive"] and refusing["connections"] <= 6 and refusing["dead letters"] == 3):
                problems.append(f"crashed, reconnected in a loop or lost a letter: {refusing}")
            if not (reported and code == 1 and rig.dlq in says):
                problems.append(f"health does not report the refusing queue: {refusing}; {says.strip()!r}")
            if refusing["log lines"] >= 10:
                problems.append(f"{refusing['log lines']} log lines about the refusal: one per message")

            rig.broker.purge(rig.dlq)  # the operator makes room and lifts the limit
            rabbitmqctl("clear_policy", policy)
            if not quietly_within(lambda: rig.drained(expected, 10), 30, 0.25):
                problems.append(f"no recovery 30s after the queue accepts again: {rig.state(expected)}")
            if not quietly_within(
                lambda: rig.check_health()[0] == 0 and not rig.health().get("problems"), 15
            ):
                problems.append(f"health not OK again: {rig.check_health()[1].strip()!r}; {rig.health()}")
            problems += rig.finish(worker, expected, dead=10, within=30)
            lines = _dead_letter_lines(rig.log_text(), rig.dlq)
            if proxy.accepted > 6 or len(lines) >= 10:
                problems.append(f"{proxy.accepted} connections; {len(lines)} log lines: {lines[:3]}")
            verdict(problems)
        finally:
            rabbitmqctl("clear_policy", policy, check=False)


# -- 8: a 45 MB body that is not JSON ------------------------------------------------------------


def test_a_45_mb_body_is_dead_lettered_as_a_bounded_record(tmp_path, names, postgresql_url):
    require("rabbitmq")
    size = 45 * 1024 * 1024
    chunk = b"\xff\xfe not JSON \x00"
    huge = (chunk * (size // len(chunk) + 1))[:size]
    digest = hashlib.sha256(huge).hexdigest()
    good, expected = feed(240, "big")
    with (
        Proxy("127.0.0.1", 5672) as proxy,
        Rig(
            tmp_path, names, postgresql_url, transport=f"rabbit://guest:guest@127.0.0.1:{proxy.port}/"
        ) as rig,
    ):
        rig.publish([huge, *good])
        started = time.monotonic()
        worker = rig.start()
        problems = rig.finish(worker, expected, dead=1)
        print(f"\n45 MB ahead of {len(good)}: done in {time.monotonic() - started:.1f}s")
        letters = rig.broker.take_all(rig.dlq)
        lost = rig.log_text().count(LOST)
        if proxy.accepted > 6 or lost > 1:
            problems.append(f"reconnects: {proxy.accepted} connections, {lost} '{LOST}' lines")
    for letter in letters:
        body = letter.body.encode() if isinstance(letter.body, str) else letter.body
        record = body + json.dumps(letter.headers, default=str).encode()
        missing = [
            name
            for name, value in (("size", str(size)), ("sha256", digest), ("routing key", INFO))
            if value.encode() not in record
        ]
        if len(body) >= 64 * 1024 or missing or not letter.headers.get("x-tracker-reason"):
            problems.append(
                f"dead letter of {len(body)} bytes, lacking {missing}, reason "
                f"{letter.headers.get('x-tracker-reason')!r}"
            )
    verdict(problems)


# -- 9: head-of-line: ten messages for one node behind 3 000 for another ------------------------


def _other_lane_prefix(busy_host, lanes):
    """A feed prefix whose host, and whose node, hash (crc32, as lanes route) to another lane
    than ``busy_host``'s and its node's: then only the broker's FIFO can hold the ten back."""

    def lane(name):
        return zlib.crc32(name.encode()) % lanes

    for k in range(100):
        host = f"late{k}-cmp0"
        if lanes == 1 or (
            lane(host) != lane(busy_host) and lane(f"{host}.example.org") != lane(f"{busy_host}.example.org")
        ):
            return f"late{k}"
    raise AssertionError("no prefix found")


def _time_to_apply(rig, host, count, truth, within):
    """Start a worker; seconds until ``host`` runs ``count`` instances (None: not within
    ``within``); then the problems of the end state, once it drained to ``truth``."""

    def applied():
        with rig.db.engine.connect() as connection:
            query = "SELECT coalesce(sum(running_vms), 0) FROM compute_nodes WHERE host = %(host)s"
            return connection.exec_driver_sql(query, {"host": host}).scalar() == count

    with ThreadWorker(rig) as running:
        reached = quietly_within(applied, within, 0.02)
        took = time.monotonic() - running.started
        return took if reached else None, rig.finish(running, truth, within=within)


def test_head_of_line_ten_behind_three_thousand(tmp_path, names, postgresql_url):
    require("rabbitmq")
    alone, expected_alone = feed(10, "alone", hosts=1, delete_every=0)
    busy, expected_busy = feed(3000, "busy", hosts=1, delete_every=0)
    with Rig(tmp_path, names, postgresql_url) as rig:
        late_prefix = _other_lane_prefix("busy-cmp0", rig.conf.worker.lanes)
        late, expected_late = feed(10, late_prefix, hosts=1, delete_every=0)
        rig.publish(alone)
        on_empty, problems = _time_to_apply(rig, "alone-cmp0", 10, expected_alone, 30)
        rig.publish(busy + late)
        total = merged(expected_alone, expected_busy, expected_late)
        behind, more = _time_to_apply(rig, f"{late_prefix}-cmp0", 10, total, 90)
    print(
        f"\nhead-of-line: ten create.end behind 3000 for another node applied {behind}s after the "
        f"worker started; the same ten on an empty queue {on_empty}s"
    )
    problems += more
    if behind is None or behind >= 30:
        problems.append(f"ten messages behind 3000 took {behind}s (on an empty queue: {on_empty}s)")
    verdict(problems)
