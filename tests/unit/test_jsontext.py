"""orjson reads a body or an ``oslo.message`` only where ``json`` would read it the same.

The reference is what the decoder did before orjson: ``json.loads`` of the
body decoded in its RFC 8259 encoding, ``json.loads`` of the inner string. A
result is compared by ``repr``, which tells 1 from 1.0 and True, -0.0 from 0.0,
and keys' order; an error by its type and message.
"""

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.errors import DecodeError
from tracker.events import envelope, jsontext

MAX = 1 << 22


def _outcome(parse: Callable[[], Any]) -> tuple[str, str]:
    try:
        return ("parsed", repr(parse()))
    except (ValueError, RecursionError, DecodeError) as error:
        return (type(error).__name__, str(error))


def _body_outcomes(raw: bytes) -> tuple[tuple[str, str], tuple[str, str]]:
    """(the decoder's, the reference's) outcome for body bytes."""
    return (
        _outcome(lambda: envelope.parse_json(raw)),
        _outcome(lambda: json.loads(raw.decode(json.detect_encoding(raw)))),
    )


def _inner_outcomes(text: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """(the decoder's, the reference's) outcome for an ``oslo.message`` string."""
    outer = {envelope.VERSION_KEY: "2.0", envelope.MESSAGE_KEY: text}

    def reference() -> Any:
        try:
            message = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise DecodeError(f"{envelope.MESSAGE_KEY} is not JSON: {str(exc)[:200]}") from exc
        if not isinstance(message, dict):
            raise DecodeError(f"{envelope.MESSAGE_KEY} is not an object")
        return message

    return _outcome(lambda: envelope.load_body(outer, MAX)), _outcome(reference)


# Where orjson and json part ways, or could; each of them must give json's outcome.
TRICKY = [
    "1e400",  # json: inf; orjson refuses
    "-1e400",
    "[1.7976931348623157e309]",
    "NaN",
    "[-Infinity, Infinity]",
    "-0.0",
    "-0",
    "[0.0, -0e0, 1E+2, 123e-20, 4.9e-324, 2.4703282292062328e-324]",
    "9007199254740993.0",
    "18446744073709551615",  # 2**64 - 1: orjson keeps it an integer
    "18446744073709551616",  # orjson: a float
    "-9223372036854775808",
    "-9223372036854775809",  # orjson: a float
    "[123456789012345678901234567890]",
    "1" + "0" * 400,
    "1" + "0" * 5000,  # beyond int's digit limit: json says so
    '{"a": 1, "b": 2, "a": 3}',  # duplicate keys: the last value, in the first place
    '"\\ud800"',  # lone surrogate escapes: json takes them, orjson refuses
    '"\\udc00\\ud800x"',
    '{"\\ud83d\\ude00": "\\u00e9"}',
    '"\\u0000\\/"',
    '"\x7f\ufffe\uffff\U0010ffff"',
    "\ufeff{}",  # a byte order mark inside a str: json refuses
    "{} x",
    "[1,]",
    '{"a": 1,}',
    "01",
    "1.",
    ".5",
    "+1",
    "'a'",
    '"\x1f"',
    " \t\n\r[] ",
    "\x0c[]",
    "[]\x00",
    "tru",
    "",
    "[" * 200 + "]" * 200,  # orjson's
    "[" * 300 + "]" * 300,  # json's, past _MAX_OPENERS
    "[" * 1000 + "]" * 1000,  # json's RecursionError, where orjson would take it
    "[" * 1100 + "]" * 1100,
    '{"a": ' * 1000 + "1" + "}" * 1000,
]


@pytest.mark.parametrize("text", TRICKY)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-le", "utf-16", "utf-32-be"])
def test_a_tricky_body_reads_as_json_reads_it(text, encoding):
    try:
        raw = text.encode(encoding)
    except UnicodeEncodeError:
        raw = text.encode(encoding, "surrogatepass")
    ours, reference = _body_outcomes(raw)
    assert ours == reference


@pytest.mark.parametrize("text", TRICKY)
def test_a_tricky_oslo_message_reads_as_json_reads_it(text):
    ours, reference = _inner_outcomes(text)
    assert ours == reference


@pytest.mark.parametrize(
    "raw",
    [
        b'"\xed\xa0\x80"',  # a surrogate
        b"\xc0\x80",  # an overlong NUL
        b'"\xf4\x90\x80\x80"',  # beyond U+10FFFF
        b'["\xff"]',
        b'"\xe2\x82"',  # cut short
        b"\x00\x00\x00[",  # UTF-32
        b"[\x00",  # UTF-16
    ],
)
def test_bytes_invalid_in_their_encoding_are_refused_as_before(raw):
    ours, reference = _body_outcomes(raw)
    assert ours == reference
    assert ours[0] != "parsed"


def test_nova_sized_messages_are_read_by_orjson():
    """The fast path is taken for what Nova sends, not only for toy documents."""
    body = {"payload": {"nova_object.data": {"uuid": "u", "memory_mb": 2**31 - 1, "ratio": 1.5}}}
    assert jsontext.read(json.dumps(body).encode()) == body


def test_orjson_is_not_asked_where_it_would_read_otherwise():
    assert jsontext.read(b"18446744073709551616") is jsontext.UNSURE
    assert jsontext.read(b'["' + b"1" * 19 + b'"]') is jsontext.UNSURE  # even in a string: unsure
    assert jsontext.read(b"[" * 257 + b"]" * 257) is jsontext.UNSURE
    assert jsontext.read(b"NaN") is jsontext.UNSURE


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
# Pieces of JSON and of what is almost JSON, for text that is mostly wrong in small ways.
_PIECES = st.sampled_from(
    [
        "{", "}", "[", "]", ",", ":", '"', "\\", "\\u", "d800", "dc00", "00e9", "0", "1", "9", "-", "+",
        ".", "e", "E", "true", "null", "NaN", "Infinity", " ", "\t", "\n", "\x00", "\x1f", "\x7f", "\ufeff",
        "é", "\ud800",
        "\U0001f600", "1234567890", "99999999999", '"a"', '"\\ud800"', "1e400", "-0", "1.5",
    ]
)  # fmt: skip


def _json_text(document: Any, ascii_only: bool, compact: bool) -> str:
    separators = (",", ":") if compact else (", ", ": ")
    return json.dumps(document, ensure_ascii=ascii_only, separators=separators)


_TEXTS = (
    st.builds(_json_text, _DOCUMENTS, st.booleans(), st.booleans())
    | st.lists(_PIECES, max_size=40).map("".join)
    | st.text(max_size=60)
    | st.builds(
        lambda document, at, piece: (text := json.dumps(document))[:at] + piece + text[at:],
        _DOCUMENTS,
        st.integers(0, 200),
        _PIECES,
    )
)


_ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16-be", "utf-32-le"])


@settings(max_examples=1500, deadline=None)
@given(text=_TEXTS, encoding=_ENCODINGS)
def test_any_body_reads_as_json_reads_it_or_both_refuse(text, encoding):
    ours, reference = _body_outcomes(text.encode(encoding, "surrogatepass"))
    assert ours == reference


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=40))
def test_any_bytes_read_as_json_reads_them_or_both_refuse(raw):
    ours, reference = _body_outcomes(raw)
    assert ours == reference


@settings(max_examples=1500, deadline=None)
@given(text=_TEXTS)
def test_any_oslo_message_reads_as_json_reads_it_or_both_refuse(text):
    ours, reference = _inner_outcomes(text)
    assert ours == reference
