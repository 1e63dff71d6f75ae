"""Dead letters on real RabbitMQ: listed, and re-applied once the cause is fixed."""

import json

import kombu
import pytest

from tests import factories
from tests.conftest import RABBIT_URL, require
from tracker.bus import amqp
from tracker.bus.deadletter import dead_letter
from tracker.cmd import manage

pytestmark = pytest.mark.functional


def _config(tmp_path, postgresql_url, names, max_bytes):
    path = tmp_path / "tracker.conf"
    path.write_text(
        f"[DEFAULT]\ntransport_url = {RABBIT_URL}\n"
        f"[database]\nconnection = {postgresql_url}\n"
        f"[nova_notifications]\ndead_letter_queue = {names['dlq']}\nmax_message_bytes = {max_bytes}\n"
    )
    return ["--config-file", str(path)]


def test_replay_applies_what_now_decodes_and_keeps_the_rest(tmp_path, postgresql_url, names, capsys):
    require("rabbitmq")
    args = _config(tmp_path, postgresql_url, names, max_bytes=1024)
    assert manage.main([*args, "db", "sync"]) == 0
    big = factories.message("instance.create.end", factories.instance_payload("u-big"))
    big["payload"]["nova_object.data"]["metadata"] = {"blob": "x" * 4000}
    try:
        with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
            conf = manage.common.parse_args(args)
            dead_letter(connection.default_channel, conf, json.dumps(big), "DecodeError: too large", "x.info")
            dead_letter(
                connection.default_channel, conf, b"not json at all", "DecodeError: not JSON", "x.info"
            )

            # decodes, but the database refuses it (uuid longer than Nova's 36 characters)
            overlong = factories.message("instance.create.end", factories.instance_payload("u" * 80))
            dead_letter(
                connection.default_channel, conf, json.dumps(overlong), "DataError: too long", "x.info"
            )

        assert manage.main([*args, "dead-letter", "list"]) == 0
        listed = capsys.readouterr().out
        assert "x.info: DecodeError: too large" in listed and "not JSON" in listed

        # still too large under the old limit: nothing settles
        assert manage.main([*args, "dead-letter", "replay"]) == 1
        assert json.loads(capsys.readouterr().out)["settled"] == 0

        # the operator raises the limit and replays: the big one applies, the garbage stays
        args = _config(tmp_path, postgresql_url, names, max_bytes=1 << 20)
        assert manage.main([*args, "dead-letter", "replay"]) == 1
        result = json.loads(capsys.readouterr().out)
        assert result == {"settled": 1, "outcomes": {"applied": 1, "failed": 1, "poison": 1}}
        assert manage.main([*args, "node", "list"]) == 0
        assert "cmp1.example.org" in capsys.readouterr().out
    finally:
        with kombu.Connection(amqp.broker_urls(RABBIT_URL)[0]) as connection:
            connection.default_channel.queue_delete(names["dlq"])
