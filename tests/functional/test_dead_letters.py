"""Dead letters on real RabbitMQ: set aside by the worker, listed, re-applied after a fix."""

import json

import kombu
import pytest

from tests import factories
from tests.conftest import RABBIT_URL, require
from tests.functional.test_worker_rabbitmq import _conf, _delete_entities
from tests.running import Running
from tests.waiting import wait_for
from tracker.bus import amqp
from tracker.cmd import manage

pytestmark = pytest.mark.functional
SECRET = "gAAAAABsecret-token"  # what factories.message puts in _context_auth_token


def _cli_args(tmp_path, url, names, max_bytes):
    path = tmp_path / "tracker.conf"
    path.write_text(
        f"[DEFAULT]\ntransport_url = {RABBIT_URL}\n"
        f"[database]\nconnection = {url}\n"
        f"[nova_notifications]\ndead_letter_queue = {names['dlq']}\nmax_message_bytes = {max_bytes}\n"
    )
    return ["--config-file", str(path)]


def _publish(conf, bodies):
    with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
        producer = kombu.Producer(connection.default_channel)
        for body in bodies:
            producer.publish(
                body if isinstance(body, bytes) else json.dumps(body),
                exchange=amqp.nova_exchange(conf),
                routing_key="versioned_notifications.info",
                content_type="application/json",
            )


def _double_wrapped():
    inner = factories.message("instance.create.end", factories.instance_payload("u-double", host="cmp8"))
    return {"oslo.version": "2.0", "oslo.message": json.dumps(factories.envelope(inner))}


def test_letters_are_listed_and_replay_gives_the_workers_verdict(tmp_path, postgresql_url, names, capsys):
    require("rabbitmq")
    conf = _conf(postgresql_url, names, max_message_bytes=2048)
    big = factories.message("instance.create.end", factories.instance_payload("u-big"))
    big["payload"]["nova_object.data"]["metadata"] = {"blob": "x" * 4000}
    overlong = factories.message("instance.create.end", factories.instance_payload("u" * 80))
    try:
        with Running(conf) as running:
            _publish(conf, [factories.envelope(big), b"not json at all", overlong, _double_wrapped()])
            wait_for(lambda: running.worker.metrics["dead_lettered"] == 4, 20.0)

        args = _cli_args(tmp_path, postgresql_url, names, max_bytes=2048)
        assert manage.main([*args, "dead-letter", "list", "--format", "json"]) == 0
        letters = json.loads(capsys.readouterr().out)
        assert [letter["routing_key"] for letter in letters] == ["versioned_notifications.info"] * 4
        assert "exceeds max_message_bytes=2048" in letters[0]["reason"] and not letters[0]["withheld"]
        assert letters[1]["withheld"] and letters[1]["bytes"] == len(b"not json at all")
        assert "uuid" in letters[2]["reason"]
        assert SECRET not in json.dumps(letters)

        # still too large under the old limit: nothing settles
        assert manage.main([*args, "dead-letter", "replay"]) == 1
        assert json.loads(capsys.readouterr().out)["settled"] == 0

        # the operator raises the limit and replays: the big one applies; the rest get
        # the verdict the worker gave them (a double-wrapped envelope is not applied)
        args = _cli_args(tmp_path, postgresql_url, names, max_bytes=1 << 20)
        assert manage.main([*args, "dead-letter", "replay"]) == 1
        assert json.loads(capsys.readouterr().out) == {"settled": 1, "outcomes": {"applied": 1, "poison": 3}}
        assert manage.main([*args, "node", "list"]) == 0
        listing = capsys.readouterr().out
        assert "cmp1.example.org" in listing and "cmp8" not in listing
    finally:
        _delete_entities(names)


def test_dead_letter_list_never_crashes_on_a_letter(tmp_path, postgresql_url, names, capsys):
    """Issue 7: one odd letter made ``dead-letter list`` end in a traceback."""
    require("rabbitmq")
    args = _cli_args(tmp_path, postgresql_url, names, max_bytes=1 << 20)
    assert manage.main([*args, "db", "sync"]) == 0
    capsys.readouterr()
    conf = manage.common.parse_args(args)
    try:
        with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
            amqp.dead_letter_queue(conf)(connection.default_channel).declare()
            producer = kombu.Producer(connection.default_channel)
            for body, headers in (
                (b"\xff\xfe\x00binary", None),
                ("{}", {"x-tracker-reason": 42, "x-original-bytes": "many", "x-tracker-withheld": "yes"}),
                ("{}", {"x-tracker-reason": "evil\n2026-01-01 ERROR forged\x1b[2J"}),
                ("{}", {"x-tracker-reason": b"lone surrogate \xed\xb2\x80"}),
            ):
                producer.publish(body, routing_key=conf.nova_notifications.dead_letter_queue, headers=headers)
        assert manage.main([*args, "dead-letter", "list"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 4
        assert "\\n2026-01-01 ERROR forged\\x1b[2J" in lines[2]
        assert lines[3].isprintable()
        assert manage.main([*args, "dead-letter", "list", "--format", "json"]) == 0
        assert [letter["reason"] for letter in json.loads(capsys.readouterr().out)] == [
            "?",
            "42",
            "evil\\n2026-01-01 ERROR forged\\x1b[2J",
            "lone surrogate \\udc80",
        ]
    finally:
        _delete_entities(names)


def test_before_the_first_letter_the_queue_is_simply_empty(tmp_path, postgresql_url, names, capsys):
    """It used to end in a 404 traceback: the queue is declared only by the first letter."""
    require("rabbitmq")
    args = _cli_args(tmp_path, postgresql_url, names, max_bytes=1 << 20)
    assert manage.main([*args, "db", "sync"]) == 0
    capsys.readouterr()
    try:
        assert manage.main([*args, "dead-letter", "list", "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out) == []
        assert manage.main([*args, "dead-letter", "replay"]) == 0
        assert json.loads(capsys.readouterr().out) == {"settled": 0, "outcomes": {}}
    finally:
        _delete_entities(names)


def test_a_dead_letter_queue_deleted_meanwhile_is_declared_again_and_nothing_is_lost(postgresql_url, names):
    """Letters are published mandatory: a missing queue returns them instead of dropping them."""
    require("rabbitmq")
    conf = _conf(postgresql_url, names)
    try:
        with Running(conf) as running:
            _publish(conf, [b"poison one"])
            wait_for(lambda: running.worker.metrics["dead_lettered"] == 1, 20.0)
            with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
                connection.default_channel.queue_delete(names["dlq"])
            _publish(conf, [b"poison two"])
            wait_for(lambda: running.worker.metrics["dead_lettered"] == 2, 20.0)
        with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
            depth = amqp.dead_letter_queue(conf)(connection.default_channel).queue_declare(passive=True)
        assert depth.message_count == 1  # the second letter, in the queue declared again
    finally:
        _delete_entities(names)
