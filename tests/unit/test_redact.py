"""What is kept of a set-aside message: its structure, never its request context."""

import json

import pytest

from tests import factories
from tracker.bus import decide
from tracker.events.redact import redact

MAX = 1 << 20
TOKEN = "gAAAAABsecret-token"  # factories.message puts it in _context_auth_token


def _create_end() -> dict:
    return factories.message("instance.create.end", factories.instance_payload("u1"))


def test_a_valid_envelope_keeps_everything_but_the_context():
    body = json.dumps(factories.envelope(_create_end()))
    kept = redact(body, MAX)
    assert not kept.withheld and TOKEN not in kept.text
    inner = json.loads(json.loads(kept.text)["oslo.message"])
    assert inner["event_type"] == "instance.create.end"
    # the request id, no secret, is all that is left of the context: failures are matched by it
    assert [key for key in inner if key.startswith("_context_")] == ["_context_request_id"]
    # the letter decodes as the original does
    assert decide.decide(kept.text, MAX).event == decide.decide(body, MAX).event


def test_an_envelope_inside_an_envelope_loses_the_context_of_both():
    inner = _create_end()
    doubled = {"oslo.version": "2.0", "oslo.message": json.dumps({**factories.envelope(inner), **inner})}
    body = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(doubled)})
    kept = redact(body, MAX)
    assert TOKEN not in kept.text and kept.text.count("_context_") == kept.text.count("_context_request_id")
    # one decoder, one verdict: what the worker refused, a replay of the letter refuses too
    assert decide.decide(body, MAX).kind == decide.decide(kept.text, MAX).kind


def test_context_keys_spelt_with_json_escapes_are_removed():
    body = json.dumps(_create_end()).replace('"_context_', '"\\u005fcontext_')
    assert "_context_auth_token" not in body
    kept = redact(body, MAX)
    assert TOKEN not in kept.text


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_body_in_another_unicode_encoding_is_parsed_and_cleaned(encoding):
    body = json.dumps(factories.envelope(_create_end())).encode(encoding)
    kept = redact(body, MAX)
    assert not kept.withheld
    assert TOKEN not in kept.text


@pytest.mark.parametrize(
    "broken",
    [
        '{"_context_auth_token": "gAAAAABsecret-token", "event_type": "instance.create.end", oops',
        '{"\\u005fcontext_auth_token": "gAAAAABsecret-token", oops',
        json.dumps(factories.envelope(_create_end()))[:-40],
        json.dumps(factories.envelope(_create_end())).encode("utf-16")[:-6],
        b"\xff\xfe" + b"garbage" * 10,
    ],
)
def test_a_body_that_does_not_parse_is_withheld_whole(broken):
    kept = redact(broken, MAX)
    raw = broken if isinstance(broken, bytes) else broken.encode()
    assert kept.withheld
    assert json.loads(kept.text) == {"withheld": "not JSON", "bytes": len(raw), "sha256": kept.sha256}


def test_an_inner_message_that_does_not_parse_is_withheld_and_the_rest_kept():
    cut = json.dumps(_create_end())[:-30]
    kept = redact(json.dumps({"oslo.version": "2.0", "oslo.message": cut}), MAX)
    assert not kept.withheld and TOKEN not in kept.text
    marker = json.loads(json.loads(kept.text)["oslo.message"])
    assert marker["bytes"] == len(cut) and "withheld" in marker


def test_a_body_over_the_limit_is_not_even_parsed():
    body = b"x" * 5000
    kept = redact(body, 1024)
    assert kept.withheld and kept.size == 5000 and len(kept.text) < 200


def test_deep_nesting_is_withheld_not_a_crash():
    assert redact(b"[" * 5000 + b"]" * 5000, MAX).withheld
    assert redact(json.dumps({"oslo.message": "[" * 5000}), MAX).text


def test_a_letter_stays_bounded_even_when_escaping_grows_it():
    body = json.dumps({"x": "\u00e9" * 3000}, ensure_ascii=False).encode()  # 2 bytes each, 6 escaped
    kept = redact(body, 4096)
    assert kept.withheld or len(kept.text) <= 2 * 4096


@pytest.mark.parametrize(
    "odd_id",
    [
        {"auth_token": TOKEN},
        ["req-1", TOKEN],
        "req-" + "x" * 80 + TOKEN,
    ],
    ids=["dict", "list", "long-string"],
)
def test_a_request_id_the_worker_would_not_read_is_dropped_with_what_it_holds(odd_id):
    body = json.dumps(factories.envelope({**_create_end(), "_context_request_id": odd_id}))
    kept = redact(body, MAX)
    assert not kept.withheld and TOKEN not in kept.text and "_context_" not in kept.text
    # the worker reads no request id there either: same verdict
    assert decide.decide(kept.text, MAX).event == decide.decide(body, MAX).event
