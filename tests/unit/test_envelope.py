import datetime
import json

import pytest

from tests import factories
from tracker.errors import DecodeError
from tracker.events import envelope

MAX = 1 << 20


def _create_end() -> dict:
    return factories.message("instance.create.end", factories.instance_payload("u1"))


def test_v2_envelope_decodes_and_drops_the_request_context():
    notification = envelope.decode(json.dumps(factories.envelope(_create_end())).encode(), MAX)
    assert notification.event_type == "instance.create.end"
    assert notification.publisher_host == "cmp1"
    assert notification.priority == "INFO"
    assert "_context_auth_token" not in json.dumps(notification.payload)


def test_bare_v1_message_dict_decodes():
    notification = envelope.decode(_create_end(), MAX)
    assert notification.payload["nova_object.data"]["uuid"] == "u1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-08-21 21:01:48.123456", datetime.datetime(2026, 8, 21, 21, 1, 48, 123456)),
        # str(datetime) drops the fraction when microsecond == 0
        ("2026-08-21 21:01:48", datetime.datetime(2026, 8, 21, 21, 1, 48)),
        ("2026-08-21T23:01:48+02:00", datetime.datetime(2026, 8, 21, 21, 1, 48)),
    ],
)
def test_timestamps_are_naive_utc(text, expected):
    assert envelope.parse_timestamp(text) == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (json.dumps({"oslo.version": "3.0", "oslo.message": "{}"}), "unsupported"),
        (json.dumps({"oslo.version": "2.0", "oslo.message": 5}), "not a JSON string"),
        (json.dumps({"oslo.version": "2.0", "oslo.message": "{nope"}), "not JSON"),
        (json.dumps({"event_type": "x", "payload": {}}), "lacks message_id, publisher_id, timestamp"),
    ],
)
def test_undecodable_bodies_raise_decode_error_with_reason(body, reason):
    with pytest.raises(DecodeError, match=reason):
        envelope.decode(body, MAX)


def test_oversized_message_is_refused_before_parsing():
    with pytest.raises(DecodeError, match="exceeds max_message_bytes=1024"):
        envelope.decode(b" " * 2048, 1024)


def test_bad_timestamp_is_a_decode_error():
    inner = _create_end()
    inner["timestamp"] = "yesterday"
    with pytest.raises(DecodeError, match="not a usable ISO 8601"):
        envelope.decode(inner, MAX)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 5000, "not JSON"),
        (json.dumps({"oslo.version": "2.0", "oslo.message": "[" * 5000}), "not JSON"),
    ],
)
def test_pathological_bodies_are_decode_errors_not_crashes(body, reason):
    with pytest.raises(DecodeError, match=reason):
        envelope.decode(body, MAX)


def test_timestamp_out_of_range_is_a_decode_error():
    with pytest.raises(DecodeError, match="not a usable"):
        envelope.parse_timestamp("0001-01-01T00:00:00+01:00")


@pytest.mark.parametrize(
    ("publisher", "host"),
    [("nova-compute:cmp1", "cmp1"), ("compute.cmp1.example.org", "cmp1.example.org"), ("nova-api", None)],
)
def test_publisher_host_for_versioned_and_legacy_publishers(publisher, host):
    inner = _create_end()
    inner["publisher_id"] = publisher
    assert envelope.decode(inner, MAX).publisher_host == host
