"""The oslo.messaging notification envelope: ``messagingv2`` and bare v1 dicts.

``messagingv2`` sends ``{"oslo.version": "2.0", "oslo.message": "<json>"}``;
the older ``messaging`` driver sends the inner dict itself. The inner dict
carries the request context flattened into ``_context_*`` keys, including the
caller's auth token: a :class:`Notification` takes the fields it names and
leaves those keys behind, at the first step, so that nothing downstream can
log, store or dead-letter them. One value is kept:
``_context_request_id``, Nova's ``req-<uuid>``, which names the API action a
notification belongs to and is no secret (Nova returns it to the user in the
``X-Openstack-Request-Id`` header).
"""

import dataclasses
import datetime
import json
from collections.abc import Mapping
from typing import Any

from tracker import escape
from tracker.errors import DecodeError, InvalidPayload
from tracker.events import fields, jsontext

VERSION_KEY = "oslo.version"
MESSAGE_KEY = "oslo.message"
CONTEXT_PREFIX = "_context_"
REQUEST_ID_KEY = CONTEXT_PREFIX + "request_id"
MAX_REQUEST_ID = 64  # Nova's are "req-" and a uuid: 40 characters
_MAX_MESSAGE_ID = 64  # oslo sends a uuid4; the column is 64 characters
_REQUIRED = ("message_id", "publisher_id", "event_type", "payload", "timestamp")


@dataclasses.dataclass(frozen=True)
class Notification:
    """One decoded notification, context removed."""

    message_id: str
    publisher_id: str
    event_type: str
    priority: str
    timestamp: datetime.datetime
    payload: Mapping[str, Any]
    request_id: str | None = None

    @property
    def publisher_host(self) -> str | None:
        """Host part of ``nova-compute:cmp1`` (versioned) or ``compute.cmp1`` (legacy)."""
        for separator in (":", "."):
            service, found, host = self.publisher_id.partition(separator)
            if found and service and host:
                return host
        return None


def parse_timestamp(value: object) -> datetime.datetime:
    """Parse oslo's ``str(utcnow())``: naive UTC, microseconds omitted when zero."""
    if not isinstance(value, str):
        raise DecodeError(f"timestamp is {type(value).__name__}, not a string")
    try:
        parsed = datetime.datetime.fromisoformat(value.strip())
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(datetime.UTC).replace(tzinfo=None)
    except (ValueError, OverflowError) as exc:
        raise DecodeError(f"timestamp {escape.text(value, 64)} is not a usable ISO 8601 time") from exc
    return parsed


def load_body(body: bytes | str | Mapping[str, Any], max_bytes: int) -> dict[str, Any]:
    """Turn an AMQP body (or an already parsed dict) into the inner message dict."""
    outer = dict(body) if isinstance(body, Mapping) else _parse_json(body, max_bytes)
    if VERSION_KEY not in outer:
        return outer
    return _unwrap_v2(outer)


def decode(body: bytes | str | Mapping[str, Any], max_bytes: int) -> Notification:
    """Decode a notification or raise :class:`DecodeError` saying what is wrong."""
    message = load_body(body, max_bytes)
    missing = [key for key in _REQUIRED if key not in message]
    if missing:
        raise DecodeError(f"notification lacks {', '.join(missing)}")
    if not isinstance(message["payload"], Mapping):
        raise DecodeError("notification payload is not an object")
    return Notification(
        message_id=_text(message, "message_id", _MAX_MESSAGE_ID),
        publisher_id=_text(message, "publisher_id", fields.MAX_NAME),
        event_type=_text(message, "event_type", fields.MAX_NAME),
        priority=str(message.get("priority") or "INFO").upper(),
        timestamp=parse_timestamp(message["timestamp"]),
        payload=message["payload"],
        request_id=request_id_of(message),
    )


def request_id_of(message: Mapping[str, Any]) -> str | None:
    """The request id of the context, if it is one Nova could have sent.

    Anything else (not a string, too long, unprintable) is dropped rather than
    refused: the id only correlates failures, the message stands without it.
    """
    return valid_request_id(message.get(REQUEST_ID_KEY))


def valid_request_id(value: Any) -> str | None:
    """``value`` if it is a request id Nova could have sent, else None."""
    if isinstance(value, str) and 0 < len(value) <= MAX_REQUEST_ID and value.isprintable():
        return value
    return None


def raw_bytes(body: bytes | str) -> bytes:
    """The bytes of a body; a text body (replay) as UTF-8, even with lone surrogates."""
    return body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")


def parse_json(raw: bytes) -> Any:
    """JSON text in UTF-8, -16 or -32, as RFC 8259 has it: bytes that are not valid in
    their encoding (a lone surrogate…) are refused, not let through as Python's
    ``json.loads`` would; a key spelt with them could otherwise pass for another."""
    encoding = json.detect_encoding(raw)
    parsed = jsontext.read(raw) if encoding == "utf-8" else jsontext.UNSURE
    # json's answer in the frame it always ran in: the same result, error, recursion limit
    return json.loads(raw.decode(encoding)) if parsed is jsontext.UNSURE else parsed


def _parse_json(body: bytes | str, max_bytes: int) -> dict[str, Any]:
    """Parsed from bytes whatever came in, so a body gets one verdict, from the wire or
    from a file (and the dead-letter redaction reads it the same way)."""
    raw = raw_bytes(body)
    if len(raw) > max_bytes:
        raise DecodeError(f"message of {len(raw)} bytes exceeds max_message_bytes={max_bytes}")
    try:
        parsed = parse_json(raw)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"body is not JSON: {str(exc)[:200]}") from exc
    if not isinstance(parsed, dict):
        raise DecodeError("body is JSON but not an object")
    return parsed


def _unwrap_v2(outer: dict[str, Any]) -> dict[str, Any]:
    version = outer.get(VERSION_KEY)
    if not isinstance(version, str):
        raise DecodeError(f"{VERSION_KEY} is {type(version).__name__}, not a string")
    if version.split(".", maxsplit=1)[0] != "2":
        raise DecodeError(f"unsupported oslo envelope version {escape.text(version, 32)}")
    inner = outer.get(MESSAGE_KEY)
    if not isinstance(inner, str):
        raise DecodeError(f"{MESSAGE_KEY} is not a JSON string")
    try:
        # a lone surrogate becomes bytes that are not UTF-8, which orjson refuses
        message = jsontext.read(inner.encode("utf-8", "surrogatepass"))
        if message is jsontext.UNSURE:
            message = json.loads(inner)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"{MESSAGE_KEY} is not JSON: {str(exc)[:200]}") from exc
    if not isinstance(message, dict):
        raise DecodeError(f"{MESSAGE_KEY} is not an object")
    return message


def _text(message: Mapping[str, Any], key: str, max_length: int) -> str:
    value = message[key]
    if not isinstance(value, str) or not value:
        raise DecodeError(f"{key} is not a non-empty string")
    try:
        return fields.checked_text(value, key, max_length)
    except InvalidPayload as error:
        raise DecodeError(str(error)) from error
