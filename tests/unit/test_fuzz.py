"""Hostile input, fuzzed: the decoder, the accounting, the dead-letter path and the worker.

Every generated message carries the request context oslo packs into it, with a
known secret token and user name, at one or more nesting levels (top-level
``_context_*`` keys, the envelope, the payload, a nested object, an envelope
inside an envelope), spelt with JSON escapes or not, in whatever encoding the
body uses. Whatever else is wrong with a message, the secret must never come
out again: not in a decision's reason, a dead letter, or a log line.
"""

import collections
import dataclasses
import datetime
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import kombu
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from tests import factories
from tests.conftest import make_conf
from tests.running import Running
from tests.waiting import wait_for
from tracker.accounting import allocations as alloc
from tracker.accounting import lifecycle
from tracker.accounting.state import InstanceState
from tracker.bus import amqp, decide
from tracker.db import apply as applying
from tracker.db import migration
from tracker.db.api import Store
from tracker.db.engine import Database
from tracker.events import envelope, fields
from tracker.events.model import FAILURE, Flavor, InstanceEvent
from tracker.events.redact import redact

TOKEN = "gAAAAABfuzz-Secret-Token-4f7Q"
USER_SECRET = "fuzz-secret-user-8kZ"
SECRETS = (TOKEN, USER_SECRET)
MAX = 16 * 1024  # max_message_bytes of the decoder under test
# A letter is kept up to dead_letter_max_bytes (4 x max_message_bytes by default) and
# replayed once its cause is fixed (e.g. with a raised max_message_bytes).
LETTER_MAX = 4 * MAX
REPLAY_MAX = 2 * LETTER_MAX + 1024
MISSING = object()  # a field left out of the message
T0 = factories.T0.replace(microsecond=0)
OUTCOMES = (
    applying.APPLIED,
    applying.UNCHANGED,
    applying.DUPLICATE,
    applying.STALE,
    applying.AFTER_DELETE,
    applying.PARKED,
)

_LARGE_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
# A failing example of the slow properties is reported unshrunk: each shrink step would
# cost a database (or a worker) again, minutes in all.
_NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]
FAST = settings(max_examples=300, deadline=None, suppress_health_check=_LARGE_DATA)
SLOW = settings(max_examples=150, deadline=None, phases=_NO_SHRINK, suppress_health_check=_LARGE_DATA)
WORKER = settings(
    max_examples=15,
    deadline=None,
    phases=_NO_SHRINK,
    suppress_health_check=[*_LARGE_DATA, HealthCheck.function_scoped_fixture],
)

# -- the request context, with the secrets ------------------------------------------------


def _context() -> dict[str, Any]:
    return {
        "_context_auth_token": TOKEN,
        "_context_user_name": USER_SECRET,
        "_context_user_id": "fake",
        "_context_roles": ["admin"],
        "_context_service_catalog": [{"endpoints": [{"token": TOKEN}]}],
        "_context_request_id": "req-5b6c791d-5709-4f36-8fbe-c3e02869e35d",
    }


secret_objects = st.sampled_from(
    [
        {"_context_auth_token": TOKEN},
        {"_context_user_name": USER_SECRET, "_context_auth_token": [TOKEN]},
        _context(),
    ]
)

# -- raw JSON text that json.dumps cannot write: placeholders replaced after dumping -------

_RAW = re.compile(r'"@@raw:([a-z]+):(\d+)@@"')
_RAW_TEXT: dict[str, Callable[[int], str]] = {
    "digits": lambda n: "9" * n,  # more than 4300 digits: Python refuses to parse it
    "negdigits": lambda n: "-" + "1" * n,
    "exp": lambda n: f"1e{n}",  # 1e400 is inf
    "frac": lambda n: "0." + "0" * n + "1",
    "nan": lambda _n: "NaN",
    "inf": lambda _n: "-Infinity",
    "negzero": lambda _n: "-0",
    "lists": lambda n: "[" * n + "]" * n,
    "dicts": lambda n: '{"a":' * n + "0" + "}" * n,
}


def raw(kind: str, n: int = 0) -> str:
    return f"@@raw:{kind}:{n}@@"


raw_numbers = st.builds(
    raw,
    st.sampled_from(["digits", "negdigits", "exp", "frac", "nan", "inf", "negzero"]),
    st.sampled_from([1, 19, 20, 400, 4300, 4301, 5000]),
)
deep_nesting = st.builds(
    raw, st.sampled_from(["lists", "dicts"]), st.sampled_from([3, 100, 400, 600, 990, 5000])
)


@dataclasses.dataclass(frozen=True)
class Spelling:
    """How a JSON value is written out."""

    ascii: bool = True
    escape_keys: bool = False  # "\u005fcontext_auth_token"
    escape_secret: bool = False  # the token itself spelt "\u0067AAAA…"
    indent: int | None = None


spellings = st.builds(Spelling, st.booleans(), st.booleans(), st.booleans(), st.sampled_from([None, 1]))


def spell(value: Any, how: Spelling) -> str:
    text = json.dumps(value, ensure_ascii=how.ascii, indent=how.indent)
    text = _RAW.sub(lambda m: _RAW_TEXT[m.group(1)](int(m.group(2))), text)
    if how.escape_keys:
        text = text.replace('"_context_', '"\\u005fcontext_')
    if how.escape_secret:
        text = text.replace(TOKEN, "\\u0067" + TOKEN[1:])
    return text


# -- field values: tame ones from small pools, hostile ones from everywhere ------------------

HOSTS = ["cmp1", "cmp2", "cmp3", "[1,2]", "{x", "\u00fcn\u00efc\u00f6d\u00e9-host", "h" * 255]
NODES = ["cmp1.example.org", "cmp2.example.org", "cmp1", "n" * 255]
UUIDS = ["0b5e3b6c-1f3e-4c7e-9a63-3f4c2d6e8a01", "inst-2", "i3", "[1]"]
TENANTS = ["proj-a", "proj-b", "6f70656e737461636b20342065766572"]
STATES = ["active", "active", "deleted", "shelved_offloaded", "resized", "error", "building", "stopped"]
TASKS = [None, None, "spawning", "resize_prep", "migrating", "deleting", ""]
VERSIONED_ACTIONS = [
    *lifecycle._HANDLERS,  # every action the fold knows
    "create.start",
    "power_off.end",
    "pause.end",
    "snapshot.end",
    "live_migration_post.end",
    "shelve.end",
]
LEGACY_SUFFIXES = [
    "create.end",
    "create.error",
    "delete.end",
    "resize.prep.start",
    "resize.prep.end",
    "resize.end",
    "finish_resize.end",
    "resize.confirm.end",
    "resize.revert.start",
    "live_migration.pre.start",
    "live_migration._rollback.end",
    "rebuild.start",
    "exists",
    "update",
    "shelve_offload.end",
    "unshelve.end",
]
OTHER_EVENT_TYPES = ["service.update", "compute.exception", "metrics.update", "flavor.create", "instance"]

CONTROL = ["\n", "\r", "\x1b[2J", "\x1b[31m", "\x00", "\x7f", "\x85", "\u2028", "\u202e", "\u2066", "\u200b"]
HOSTILE_TEXTS = [
    "cmp1\n2026-08-21 21:00:00 ERROR forged record",
    "\x1b[2J\x1b[31mred\x1b[0m",
    "cmp1\r",
    "\u202e" + "exe.doc",
    "\u2066isolated\u2069",
    "\u200bzero-width",
    "tab\there",
    "nul\x00byte",
    "\x7fdel",
    "\x85next-line",
    "\u2028line-separator",
    "\udc80lone-low-surrogate",
    "\ud83d",
    "\U0001f600-emoji",
    "",
    " ",
    "x" * 36,
    "x" * 37,
    "x" * 64,
    "x" * 65,
    "x" * 255,
    "x" * 256,
    "\u00e9" * 300,
    "[1,2]",
    "[ 1 ]",
    "{x",
    "{}",
    "[\x1b]",
    '{"a": 1}',
    " [1]",
    "\ufeff{}",
    "\\u005f",
    "nova-compute:",
    ":cmp1",
    "compute.",
    "instance.",
    "compute.instance.",
    "instance.create.end\n",
    "instance.\x1b[2Jcreate.end",
    "instance." + "x" * 300,
]
unusual_characters = st.characters(categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs", "So"])
wrong_types = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    secret_objects,
    deep_nesting,
    raw_numbers,
)
hostile_texts = st.one_of(
    st.sampled_from(HOSTILE_TEXTS),
    st.builds(  # looks like JSON to the letter writer
        str.__add__, st.sampled_from(["{", "[", " [", "[1,  2]", '{"a":1}']), st.sampled_from(["", *CONTROL])
    ),
    st.text(max_size=40),
    st.text(unusual_characters, min_size=1, max_size=10),
    st.builds(
        lambda a, c, b: a + c + b, st.sampled_from(HOSTS), st.sampled_from(CONTROL), st.text(max_size=5)
    ),
)
hostile_values = st.one_of(hostile_texts, wrong_types, st.just(MISSING))
hostile_sizes = st.one_of(
    st.sampled_from([2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, 10**30, -1, -(2**31), -(2**63)]),
    st.integers(-(2**80), 2**80),
    st.floats(),
    st.booleans(),
    st.sampled_from(["2", "0", "-1", "9" * 30, " 2", "0x10", "2.0", "", "\u0662"]),
    st.none(),
    raw_numbers,
    secret_objects,
    deep_nesting,
    st.just(MISSING),
)
timestamps_tame = st.builds(
    lambda s, us: str(T0 + datetime.timedelta(seconds=s, microseconds=us)),
    st.integers(0, 30),
    st.sampled_from([0, 0, 1, 500000]),
)
fixed_offsets = st.builds(
    datetime.timezone,
    st.timedeltas(
        min_value=datetime.timedelta(hours=-23, minutes=-59), max_value=datetime.timedelta(hours=23)
    ),
)
hostile_timestamps = st.one_of(
    st.datetimes().map(str),
    st.datetimes(timezones=fixed_offsets).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",  # overflows once converted to UTC
            "9999-12-31T23:59:59.999999-01:00",
            "0001-01-01 00:00:00",
            "0999-06-01 00:00:00",
            "9999-12-31 23:59:59.999999",
            "2026-13-01 00:00:00",
            "2026-08-21 25:00:00",
            "2026-08-21T21:00:00Z",
            "2026-08-21\n21:00:00",
            "\x1b[2J2026-08-21 21:00:00",
            " 2026-08-21 21:00:00 ",
            "2026-08-21 21:00:00.1234567",
            "20260821T210000",
            "2026-W34-5",
            "now",
            "",
        ]
    ),
    st.text(max_size=30),
    wrong_types,
    st.just(MISSING),
)


class Picker:
    """Draws each field tame or hostile, by the message's level of hostility.

    Level 0: all tame; 1: exactly one field hostile; 2: each field one time in five;
    3: each field one time in two.
    """

    def __init__(self, draw: Callable[..., Any], level: int) -> None:
        self._draw = draw
        self._level = level
        self._count = 0
        self._target = draw(st.integers(0, 40)) if level == 1 else -1

    def __call__(self, tame: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
        self._count += 1
        if self._level == 0:
            hit = False
        elif self._level == 1:
            hit = self._count == self._target
        else:
            hit = self._draw(st.integers(0, 4 if self._level == 2 else 1)) == 0
        return self._draw(hostile if hit else tame)

    def draw(self, strategy: st.SearchStrategy[Any]) -> Any:
        return self._draw(strategy)


def present(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not MISSING}


def _maybe_context(pick: Picker, data: dict[str, Any]) -> dict[str, Any]:
    """The request context again, nested one level down, sometimes."""
    if pick.draw(st.integers(0, 3)) == 0:
        data.update(_context())
    return data


def _flavor_data(pick: Picker) -> dict[str, Any]:
    name = pick(st.sampled_from(["m1.small", "m1.big", "[1,2]"]), hostile_values)
    return _maybe_context(
        pick,
        present(
            {
                "flavorid": pick(st.sampled_from(["1", "2", "m1.small"]), hostile_values),
                "name": name,
                "vcpus": pick(st.integers(0, 8), hostile_sizes),
                "memory_mb": pick(st.sampled_from([0, 512, 2048, 2**31 - 1]), hostile_sizes),
                "root_gb": pick(st.integers(0, 40), hostile_sizes),
                "ephemeral_gb": pick(st.sampled_from([0, 0, 4, MISSING]), hostile_sizes),
                "swap": pick(st.sampled_from([0, 0, 512, 1024, 1536, MISSING]), hostile_sizes),
                "extra_specs": pick(st.just({}), hostile_values),
            }
        ),
    )


def _versioned_object(pick: Picker, data: Any) -> Any:
    wrapper = {"nova_object.name": "InstanceActionPayload", "nova_object.version": "1.9"}
    return pick(st.just({**wrapper, "nova_object.data": data}), st.one_of(wrong_types, st.just(data)))


def _versioned_payload(pick: Picker) -> Any:
    data = {
        "uuid": pick(st.sampled_from(UUIDS), hostile_values),
        "tenant_id": pick(st.sampled_from(TENANTS), hostile_values),
        "host": pick(st.sampled_from([*HOSTS, None]), hostile_values),
        "node": pick(st.sampled_from([*NODES, None]), hostile_values),
        "state": pick(st.sampled_from(STATES), hostile_values),
        "task_state": pick(st.sampled_from(TASKS), hostile_values),
        "flavor": _versioned_object(pick, _flavor_data(pick)),
        "image_uuid": pick(st.sampled_from(["a2459075-d96c-40d5-893e-577ff92e721c", ""]), hostile_values),
        "block_devices": pick(
            st.sampled_from([[], [{"boot_index": 0, "volume_id": "v1"}], [{"boot_index": "0"}]]),
            hostile_values,
        ),
        "display_name": pick(st.text(max_size=10), hostile_values),
    }
    if pick.draw(st.booleans()):
        data["new_flavor"] = _versioned_object(pick, _flavor_data(pick))
    return _versioned_object(pick, _maybe_context(pick, present(data)))


def _legacy_payload(pick: Picker) -> Any:
    data = {
        "instance_id": pick(st.sampled_from(UUIDS), hostile_values),
        "tenant_id": pick(st.sampled_from(TENANTS), hostile_values),
        "host": pick(st.sampled_from([*HOSTS, None]), hostile_values),
        "node": pick(st.sampled_from([*NODES, None]), hostile_values),
        "state": pick(st.sampled_from(STATES), hostile_values),
        "state_description": pick(st.sampled_from(["", "spawning", "resize_prep"]), hostile_values),
        "instance_type": pick(st.sampled_from(["m1.small", "m1.big"]), hostile_values),
        "instance_flavor_id": pick(st.sampled_from(["1", "2"]), hostile_values),
        "vcpus": pick(st.integers(0, 8), hostile_sizes),
        "memory_mb": pick(st.sampled_from([0, 512, 2048]), hostile_sizes),
        "root_gb": pick(st.integers(0, 40), hostile_sizes),
        "ephemeral_gb": pick(st.sampled_from([0, 4]), hostile_sizes),
        "image_ref_url": pick(
            st.sampled_from(["http://glance/images/abc", "", "http://g/images/"]), hostile_values
        ),
        "new_instance_type": pick(st.sampled_from([MISSING, "m1.big"]), hostile_values),
    }
    return _maybe_context(pick, present(data))


junk = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), raw_numbers, secret_objects
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def messages(draw: Callable[..., Any], max_level: int = 3) -> dict[str, Any]:
    """The inner oslo message dict: the context at top level, fields tame or hostile."""
    pick = Picker(draw, draw(st.integers(0, max_level)))
    legacy = draw(st.integers(0, 3)) == 0
    host = draw(st.sampled_from(HOSTS[:3]))
    if legacy:
        event_type = st.sampled_from(LEGACY_SUFFIXES).map("compute.instance.".__add__)
        publisher = st.sampled_from([f"compute.{host}", "compute.ctl", "compute"])
        payload = _legacy_payload(pick)
    else:
        event_type = st.sampled_from(VERSIONED_ACTIONS).map("instance.".__add__)
        publisher = st.sampled_from(
            [f"nova-compute:{host}", "nova-api:ctl", "nova-compute", f"nova-compute:{host}"]
        )
        payload = _versioned_payload(pick)
    message = {
        "message_id": pick(st.uuids().map(str), hostile_values),
        "publisher_id": pick(publisher, hostile_values),
        "event_type": pick(
            st.one_of(event_type, event_type, event_type, st.sampled_from(OTHER_EVENT_TYPES)), hostile_values
        ),
        "priority": pick(st.sampled_from(["INFO", "ERROR", MISSING]), hostile_values),
        "payload": pick(st.just(payload), st.one_of(wrong_types, st.just({}))),
        "timestamp": pick(timestamps_tame, hostile_timestamps),
        "_unique_id": draw(st.uuids()).hex,
        **_context(),
    }
    if pick(st.just(False), st.booleans()):
        message[draw(st.text(max_size=8))] = draw(st.one_of(junk, deep_nesting))
    return present(message)


# -- envelopes, spelling, encodings ------------------------------------------------------------

VERSIONS = ["2.0", "2", 2, 2.0, "2.1", "3.0", "1.0", "", None, "\x1b[2J", "2\n", "3\r\nforged"]


def _v2(message_text: Any, version: Any = "2.0") -> dict[str, Any]:
    return {"oslo.version": version, "oslo.message": message_text}


def _wrap(draw: Callable[..., Any], message: dict[str, Any], how: Spelling, hostile: bool) -> Any:
    """The outer JSON value around ``message``, nested as a hostile publisher might."""
    kinds = ["v2", "v2", "v2", "v1"]
    if hostile:
        kinds += ["version", "dict", "v2-in-v2", "merged", "double", "bom", "spaces", "list", "context"]
    kind = draw(st.sampled_from(kinds))
    inner = spell(message, how)
    wrappers: dict[str, Callable[[], Any]] = {
        "v1": lambda: message,
        "v2": lambda: _v2(inner),
        "version": lambda: _v2(
            inner, draw(st.one_of(st.sampled_from(VERSIONS), secret_objects, deep_nesting))
        ),
        "dict": lambda: _v2(message),
        "v2-in-v2": lambda: _v2(spell({**_v2(inner), **_context()}, how)),
        "merged": lambda: _v2(spell({**_v2(inner), **message}, how)),
        "double": lambda: _v2(json.dumps(inner)),  # a JSON string holding the message's JSON
        "bom": lambda: _v2("\ufeff" + inner),
        "spaces": lambda: _v2(" \n\t" + inner),
        "list": lambda: [_v2(inner)],
        "context": lambda: {**_v2(inner), **_context()},
    }
    return wrappers[kind]()


ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-16-be-bom", "utf-32", "utf-32-le"]
HOSTILE_ENCODINGS = ["str", "str", "utf-32-be", "latin-1", "invalid-utf-8", "cp500"]
INVALID_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80", b"\xf4\x90\x80\x80"]


def _encode(draw: Callable[..., Any], text: str, encoding: str) -> bytes | str:
    if encoding == "str":
        return text
    if encoding == "utf-16-be-bom":
        return b"\xfe\xff" + text.encode("utf-16-be", "surrogatepass")
    if encoding == "latin-1":
        return text.encode("latin-1", "replace")
    if encoding == "invalid-utf-8":
        raw_bytes = text.encode("utf-8", "surrogatepass")
        at = draw(st.integers(0, len(raw_bytes)))
        return raw_bytes[:at] + draw(st.sampled_from(INVALID_UTF8)) + raw_bytes[at:]
    return text.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")


# Which parts of a body are hostile: one at a time, so the rest stays valid enough for the
# hostile part to matter, or all of them at once.
BODY_MODES = ["tame", "message", "message", "message", "envelope", "encoding", "cut", "oversize", "all"]


@st.composite
def bodies(draw: Callable[..., Any], text_bodies: bool = True) -> bytes | str:
    """A whole AMQP body: an envelope, spelt, encoded, maybe truncated or oversized."""
    mode = draw(st.sampled_from(BODY_MODES))
    message = draw(messages(max_level=3 if mode in ("message", "all") else 0))
    how = draw(spellings)
    value = _wrap(draw, message, how, hostile=mode in ("envelope", "all"))
    encodings = ENCODINGS + (HOSTILE_ENCODINGS if mode in ("encoding", "all") else [])
    encoding = draw(st.sampled_from([e for e in encodings if text_bodies or e != "str"]))
    body = _encode(draw, spell(value, how), encoding)
    if mode == "cut" or (mode == "all" and draw(st.booleans())):
        body = body[: draw(st.integers(0, max(len(body) - 1, 0)))]
    if mode == "oversize":
        body = body + (b" " if isinstance(body, bytes) else " ") * MAX  # over max_message_bytes
    return body


@st.composite
def accounting_bodies(draw: Callable[..., Any]) -> bytes:
    """Mostly valid messages from small pools, so lifecycles collide; a few hostile ones."""
    hostile = draw(st.integers(0, 5)) == 0
    message = draw(messages(max_level=2 if hostile else 0))
    how = draw(spellings)
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "utf-32"]))
    return spell(_v2(spell(message, how)), how).encode(encoding, "surrogatepass")


# -- checks --------------------------------------------------------------------------------


def _check_name(value: str | None, limit: int) -> None:
    if value is not None:
        assert isinstance(value, str) and value.isprintable(), repr(value)
        assert 0 < len(value) <= limit, repr(value)


def _check_flavor(flavor: Flavor | None) -> None:
    if flavor is None:
        return
    for size in (flavor.vcpus, flavor.memory_mb, flavor.root_gb, flavor.ephemeral_gb, flavor.swap):
        assert type(size) is int and 0 <= size <= 2**31 - 1, repr(size)
    _check_name(flavor.name, fields.MAX_NAME)
    _check_name(flavor.flavorid, fields.MAX_NAME)


def check_event(event: InstanceEvent | None) -> None:
    assert isinstance(event, InstanceEvent)
    if event.routed:  # a versioned compute.exception is routed by its request id later
        _check_name(event.instance_uuid, fields.UUID_LENGTH)
    else:
        assert event.action == FAILURE and event.request_id is not None, event
    _check_name(event.request_id, envelope.MAX_REQUEST_ID)
    _check_name(event.message_id, 64)
    for name in (
        event.host,
        event.node,
        event.project_id,
        event.publisher_host,
        event.vm_state,
        event.task_state,
    ):
        _check_name(name, fields.MAX_NAME)
    assert (
        isinstance(event.action, str) and event.action.isprintable() and len(event.action) <= fields.MAX_NAME
    )
    assert isinstance(event.timestamp, datetime.datetime) and event.timestamp.tzinfo is None
    _check_flavor(event.flavor)
    _check_flavor(event.new_flavor)
    assert type(event.boot_from_volume) is bool


def check_decision(decision: decide.Decision) -> None:
    assert decision.kind in (decide.APPLY, decide.IGNORE, decide.POISON)
    if decision.kind == decide.APPLY:
        check_event(decision.event)
        return
    assert decision.event is None
    assert decision.reason and decision.reason.isprintable(), repr(decision.reason)
    # the reason goes into the letter's header and the log: no secret in it
    assert not [s for s in SECRETS if s in decision.reason], decision.reason


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    """Every string in a JSON value, and in JSON held in its strings, however spelt."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item, depth)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, depth)
    elif isinstance(value, str):
        yield value
        if depth < 8:
            try:
                parsed = json.loads(value.strip().lstrip("\ufeff"))
            except (ValueError, RecursionError):
                return
            yield from _strings(parsed, depth + 1)


def assert_no_secret(data: bytes | str) -> None:
    """Neither the secrets' UTF-8 nor their UTF-16 bytes, nor the secrets once JSON is decoded."""
    raw_bytes = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    for secret in SECRETS:
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert secret.encode(encoding) not in raw_bytes, (secret, encoding, data[:2000])
    try:
        decoded = json.loads(raw_bytes)
    except (ValueError, RecursionError):
        return
    leaked = [s for s in _strings(decoded) if any(secret in s for secret in SECRETS)]
    assert not leaked, leaked


def _size(body: bytes | str) -> int:
    return len(body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass"))


# -- (1) the decoder ------------------------------------------------------------------------


@FAST
@given(body=bodies())
def test_decide_any_body_is_apply_ignore_or_printable_poison(body):
    """Whatever the bytes or text: a verdict, never an exception, never an unprintable reason."""
    check_decision(decide.decide(body, MAX))


@FAST
@given(message=messages())
def test_decide_any_message_dict_is_apply_ignore_or_printable_poison(message):
    """The bare v1 dict form too (``replay`` and tests hand dicts over)."""
    try:
        parsed = json.loads(spell(message, Spelling()))
    except (ValueError, RecursionError):  # numbers or nesting no Python dict can come from
        assume(False)
    check_decision(decide.decide(parsed, MAX))


# -- (3) the dead-letter path ------------------------------------------------------------------


@FAST
@given(body=bodies(), limit=st.sampled_from([64, 1024, LETTER_MAX]))
def test_redact_keeps_no_secret_and_stays_bounded(body, limit):
    letter = redact(body, limit)
    assert letter.text.isascii()
    json.loads(letter.text)
    assert len(letter.text) <= 2 * limit + 200
    assert letter.size == _size(body)
    assert_no_secret(letter.text)


def check_letter_verdict(body: bytes) -> None:
    """One decoder, one verdict: an applied body's letter applies the same event; poison stays poison.

    Letters come from AMQP, so bodies are bytes; they are replayed with a raised
    max_message_bytes, as the operator does once a cause is fixed.
    """
    original = decide.decide(body, MAX)
    letter = redact(body, LETTER_MAX)
    replayed = decide.decide(letter.text, REPLAY_MAX)
    if original.kind == decide.APPLY:
        assert (replayed.kind, replayed.event) == (decide.APPLY, original.event), replayed.reason
    elif original.kind == decide.POISON and _size(body) <= MAX:  # a raised limit may admit the rest
        assert replayed.kind == decide.POISON, (original.reason, replayed.event)


@FAST
@given(body=bodies(text_bodies=False))
def test_a_letter_replays_to_the_verdict_the_worker_reached(body):
    check_letter_verdict(body)


# -- (2) the accounting ----------------------------------------------------------------------


def new_store(stopping: threading.Event | None = None) -> tuple[Database, Store]:
    """A fresh in-memory SQLite store (one connection: the test has one thread)."""
    conf = make_conf("sqlite://")
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    return db, Store(db, conf, stopping)


def _fold(events: list[InstanceEvent]) -> dict[str, InstanceState]:
    by_instance: dict[str, list[InstanceEvent]] = collections.defaultdict(list)
    for event in events:
        by_instance[event.instance_uuid].append(event)
    return {key: lifecycle.derive(InstanceState(uuid=key), kept) for key, kept in by_instance.items()}


def _check_allocations(states: dict[str, InstanceState]) -> None:
    for state in states.values():
        for allocation in alloc.allocations(state):
            _check_name(allocation.location.host, fields.MAX_NAME)
            _check_name(allocation.location.node, fields.MAX_NAME)
            usage = allocation.usage
            assert min(usage.vcpus, usage.memory_mb, usage.local_gb) >= 0, allocation


def expected_store(
    events: list[InstanceEvent], results: list[Any]
) -> tuple[list[str], dict[str, InstanceState]]:
    """What the store must have done: skip redeliveries and republications, refuse after a delete."""
    kept: dict[str, list[InstanceEvent]] = collections.defaultdict(list)
    statuses = []
    for event, result in zip(events, results, strict=True):
        history = kept[event.instance_uuid]
        if isinstance(result, applying.PoisonEvent):
            statuses.append("poison")
        elif lifecycle.derive(InstanceState(uuid=event.instance_uuid), history).deleted:
            statuses.append(applying.AFTER_DELETE)
        elif any(e.message_id == event.message_id or e.dedupe_key == event.dedupe_key for e in history):
            statuses.append(applying.DUPLICATE)
        else:
            history.append(event)
            statuses.append("counted")
    return statuses, _fold([e for history in kept.values() for e in history])


def _totals(states: dict[str, InstanceState]) -> tuple[int, int, int, int]:
    held = [a for state in states.values() for a in alloc.allocations(state)]
    return (
        sum(a.usage.vcpus for a in held),
        sum(a.usage.memory_mb for a in held),
        sum(a.usage.local_gb for a in held),
        sum(a.role == alloc.INSTANCE for a in held),
    )


_NODE_COUNTERS = sa.text(
    "SELECT host, hypervisor_hostname, vcpus_used, memory_mb_used, local_gb_used, running_vms"
    " FROM compute_nodes"
)
_PROJECT_COUNTERS = sa.text("SELECT project_id, vcpus, memory_mb, local_gb, instances FROM project_usage")
_PROJECT_ALLOCATIONS = sa.text(
    "SELECT project_id, SUM(vcpus), SUM(memory_mb), SUM(local_gb),"
    " SUM(CASE WHEN role = 'instance' THEN 1 ELSE 0 END) FROM allocations GROUP BY project_id"
)


def stored_counters(db: Database) -> tuple[list[Any], list[Any], dict[Any, tuple[int, ...]]]:
    """Node counters, project counters, and per project the sums of its allocation rows."""
    with db.engine.connect() as connection:
        nodes = list(connection.execute(_NODE_COUNTERS))
        projects = list(connection.execute(_PROJECT_COUNTERS))
        sums = {row[0]: tuple(int(v) for v in row[1:]) for row in connection.execute(_PROJECT_ALLOCATIONS)}
    return nodes, projects, sums


def _check_stored_counters(db: Database) -> tuple[int, int, int, int]:
    """Node and project counters are never negative, a project's equal its allocations;
    returns the sums over all nodes."""
    nodes, projects, sums = stored_counters(db)
    for node in nodes:
        assert min(node[2:]) >= 0, tuple(node)
    for project in projects:
        assert min(project[1:]) >= 0, tuple(project)
        assert tuple(project[1:]) == sums.get(project[0], (0, 0, 0, 0)), (tuple(project), sums)
    return tuple(sum(node[i] for node in nodes) for i in range(2, 6))  # type: ignore[return-value]


@SLOW
@given(batch=st.lists(accounting_bodies(), min_size=1, max_size=25), chunk=st.integers(1, 25))
def test_accounting_of_any_decided_batch_stays_consistent(batch, chunk):
    """Fold what the decoder lets through, then apply it in batches of ``chunk``: never an
    exception, one Outcome or PoisonEvent per event, counters that add up and never go
    negative, and the verdicts and totals one event at a time gives."""
    decisions = [decide.decide(body, MAX) for body in batch]
    # A compute.exception is given its instances by the database (tracker.db.requests),
    # which this model does not follow: test_lifecycles and test_nova_captures cover it.
    events = [d.event for d in decisions if d.event is not None and d.event.routed]
    _check_allocations(_fold(events))

    stopping = threading.Event()  # a retry loop that never ends fails the test instead of hanging it
    watchdog = threading.Timer(60.0, stopping.set)
    watchdog.start()
    db, store = new_store(stopping)
    try:
        results = []
        for start in range(0, len(events), chunk):
            results += store.apply_batch(events[start : start + chunk])
        assert len(results) == len(events)
        assert all(isinstance(r, applying.Outcome | applying.PoisonEvent) for r in results), results
        assert all(r.status in OUTCOMES for r in results if isinstance(r, applying.Outcome)), results
        assert store.audit() == []
        totals = _check_stored_counters(db)
        statuses, states = expected_store(events, results)
        got = [r.status if isinstance(r, applying.Outcome) else "poison" for r in results]
        agree = [
            g in (applying.APPLIED, applying.UNCHANGED) if s == "counted" else g == s
            for g, s in zip(got, statuses, strict=True)
        ]
        assert all(agree), list(zip(got, statuses, strict=True))
        assert totals == _totals(states)
    finally:
        watchdog.cancel()
        db.dispose()


# -- (4) the worker on memory:// ------------------------------------------------------------

GOOD_FLAVORS = [
    dict(vcpus=1, memory_mb=512, root_gb=1, ephemeral_gb=0, swap=0),
    dict(vcpus=2, memory_mb=2048, root_gb=20, ephemeral_gb=4, swap=1536),
    dict(vcpus=8, memory_mb=16384, root_gb=80, ephemeral_gb=0, swap=0),
]
STATUS_COUNTERS = (*OUTCOMES, "ignored", "dead_lettered")


@dataclasses.dataclass(frozen=True)
class Good:
    flavor: int
    node: int
    encoding: str
    duplicated: bool


goods = st.builds(
    Good,
    st.integers(0, len(GOOD_FLAVORS) - 1),
    st.integers(0, 1),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"]),
    st.booleans(),
)


def _good_messages(goods_: list[Good], nonce: str) -> tuple[list[bytes], dict[tuple[str, str], list[int]]]:
    """Creates of distinct instances on known nodes; the usage they must add up to."""
    bodies_, expected = [], collections.defaultdict(lambda: [0, 0, 0, 0])
    for number, good in enumerate(goods_):
        host = f"ok{nonce}-cmp{good.node}"
        node = f"{host}.example.org"
        flavor = GOOD_FLAVORS[good.flavor]
        payload = factories.instance_payload(
            f"ok-{nonce}-{number}", host=host, node=node, flavor=factories.flavor_payload(**flavor)
        )
        inner = factories.message("instance.create.end", payload, publisher=f"nova-compute:{host}")
        inner.update(_context())
        body = json.dumps(factories.envelope(inner)).encode(good.encoding)
        bodies_ += [body, body] if good.duplicated else [body]
        used = expected[(host, node)]
        disk = flavor["root_gb"] + flavor["ephemeral_gb"] + -(-flavor["swap"] // 1024)
        for index, amount in enumerate((1, flavor["vcpus"], flavor["memory_mb"], disk)):
            used[index] += amount
    ignored = factories.envelope(factories.message("metrics.update", {"host": f"ok{nonce}-cmp0"}))
    bodies_.append(json.dumps(ignored).encode())
    return bodies_, expected


def _worker_conf(directory: str, nonce: str) -> Any:
    return make_conf(
        f"sqlite:///{directory}/worker.sqlite",
        DEFAULT={"transport_url": "memory://"},
        nova_notifications={
            "exchange": f"nova-{nonce}",
            "queue": f"q-{nonce}",
            "dead_letter_queue": f"dlq-{nonce}",
            "max_message_bytes": MAX,
        },
        capacity_notifications={"exchange": f"tracker-{nonce}", "relay_interval": 0.05},
        worker={"shutdown_timeout": 5.0, "health_file": ""},
    )


def _publish_backlog(conf: Any, connection: kombu.Connection, backlog: list[Any]) -> None:
    amqp.notification_queue(conf)(connection.default_channel).declare()
    producer = kombu.Producer(connection.default_channel)
    for index, body in enumerate(backlog):
        options: dict[str, Any] = {"content_type": "application/json"}
        if body is None:  # kombu itself cannot decode this one
            options = {"headers": {"compression": "application/x-unknown"}}
        routing_key = "versioned_notifications." + ("error" if index % 5 == 0 else "info")
        producer.publish(
            b"x" if body is None else body,
            exchange=amqp.nova_exchange(conf),
            routing_key=routing_key,
            **options,
        )


def _dead_letters(conf: Any, connection: kombu.Connection) -> list[Any]:
    queue = amqp.dead_letter_queue(conf)(connection.default_channel)
    letters = []
    while (letter := queue.get(no_ack=True)) is not None:
        letters.append(letter)
    return letters


def _check_log(records: list[logging.LogRecord]) -> None:
    for record in records:
        text = record.getMessage()
        assert text.isprintable(), text  # no newline, ESC, bidi override… straight from a message
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        assert not [s for s in SECRETS if s in text], text


@WORKER
@given(
    hostile=st.lists(bodies(text_bodies=False), max_size=6),
    good=st.lists(goods, min_size=1, max_size=4),
    undecodable=st.booleans(),
    data=st.data(),
)
def test_worker_drains_a_hostile_backlog(hostile, good, undecodable, data, caplog, tmp_path_factory):
    """A backlog of hostile and good messages, published before the worker starts, is drained:
    each message counted once, the good ones' usage exact, no secret in a dead letter (body or
    headers) or a log record, no log record with an unprintable character."""
    caplog.set_level(logging.INFO)
    caplog.clear()
    nonce = uuid.uuid4().hex[:8]
    conf = _worker_conf(str(tmp_path_factory.mktemp("fuzz")), nonce)
    good_bodies, expected = _good_messages(good, nonce)
    backlog = data.draw(st.permutations([*good_bodies, *hostile, *([None] if undecodable else [])]))
    connection = kombu.Connection("memory://")
    _publish_backlog(conf, connection, backlog)

    try:
        with Running(conf) as running:
            worker = running.worker
            wait_for(lambda: sum(worker.metrics[name] for name in STATUS_COUNTERS) >= len(backlog), 30.0)
        counts = {name: worker.metrics[name] for name in STATUS_COUNTERS}
        assert worker.metrics["received"] == len(backlog)
        assert sum(counts.values()) == len(backlog), counts
        assert counts["duplicate"] >= sum(g.duplicated for g in good)
        assert counts["ignored"] >= 1
        views = [v for v in worker._store.node_views() if v["host"].startswith(f"ok{nonce}")]
        got = {
            (v["host"], v["node"]): [
                v["running_vms"],
                v["resources"]["vcpus"]["used"],
                v["resources"]["memory_mb"]["used"],
                v["resources"]["local_gb"]["used"],
            ]
            for v in views
        }
        assert got == dict(expected)

        letters = _dead_letters(conf, connection)
        assert len(letters) == counts["dead_lettered"]
        for letter in letters:
            assert_no_secret(letter.body)
            headers = json.dumps(letter.headers, default=str)
            assert not [s for s in SECRETS if s in headers], headers
        _check_log(caplog.records)
    finally:
        connection.release()


# -- what the fuzzing found, pinned as plain examples (each fails until its bug is fixed) ---------


def _create_end(**payload: Any) -> dict[str, Any]:
    message = factories.message("instance.create.end", factories.instance_payload("u1", **payload))
    message.update(_context())
    return message


def _body(value: Any) -> bytes:
    return spell(value, Spelling()).encode()


def _enveloped(message: dict[str, Any]) -> bytes:
    return _body(_v2(spell(message, Spelling())))


def _with_vcpus(value: Any) -> dict[str, Any]:
    message = _create_end()
    message["payload"]["nova_object.data"]["flavor"]["nova_object.data"]["vcpus"] = value
    return message


def _with_display_name(value: Any) -> dict[str, Any]:
    message = _create_end()
    message["payload"]["nova_object.data"]["display_name"] = value
    return message


@pytest.mark.parametrize(
    "body",
    [
        # fields.size puts the value's repr in the reason: a context object there leaks
        _enveloped(_with_vcpus({"_context_auth_token": TOKEN})),
        # the envelope version goes into the reason unescaped and whole
        _body({"oslo.version": "\x1b[2J", "oslo.message": "{}"}),
        _body({"oslo.version": "3\nforged line", "oslo.message": "{}"}),
        _body({"oslo.version": {"_context_auth_token": TOKEN}, "oslo.message": "{}"}),
        # a text body (replay) holding a lone surrogate: UnicodeEncodeError, not a verdict
        spell(_v2(spell(_with_display_name("\udc80"), Spelling(ascii=False))), Spelling(ascii=False)),
    ],
    ids=[
        "size-repr-leaks-context",
        "version-esc",
        "version-newline",
        "version-leaks-context",
        "text-surrogate",
    ],
)
def test_found_decide_reasons_are_printable_and_secret_free(body):
    check_decision(decide.decide(body, MAX))


@pytest.mark.parametrize(
    "oslo_message",
    [
        json.dumps(json.dumps(_create_end())),  # a JSON string holding the message's JSON
        "\ufeff" + json.dumps(_create_end()),  # the message's JSON after a byte order mark
    ],
    ids=["json-string-of-json", "bom-then-json"],
)
def test_found_context_inside_json_text_inside_a_string_is_not_kept(oslo_message):
    assert_no_secret(redact(_body({"oslo.version": "2.0", "oslo.message": oslo_message}), LETTER_MAX).text)


@pytest.mark.parametrize(
    "body",
    [
        _enveloped(_create_end(host="[1,2]")),  # letter says host "[1, 2]"
        _enveloped(_create_end(host="{x")),  # letter says host '{"withheld": …}'
        _enveloped(_create_end(host="{\x1b")),  # poison; its letter applies
        _enveloped({**_create_end(), "message_id": "{a"}),  # applies; its letter is poison
        # valid, with 600 nested lists in a field nobody reads: the letter is withheld
        _enveloped(_with_display_name(raw("lists", 600))),
    ],
    ids=["host-list", "host-brace", "host-brace-esc", "message-id-brace", "nested-600"],
)
def test_found_a_letter_replays_to_the_same_verdict(body):
    check_letter_verdict(body)


def test_found_a_tenant_change_keeps_project_usage_equal_to_its_allocations():
    db, store = new_store()
    try:
        store.apply_batch(
            [
                factories.event("create.end", 0, project="proj-a"),
                factories.event("delete.end", 1, project="proj-b", state="deleted", host=None, node=None),
            ]
        )
        _check_stored_counters(db)  # proj-a keeps 2 vCPUs, proj-b is at -2
    finally:
        db.dispose()


def test_found_a_tombstone_purge_also_covers_events_dated_before_year_1000():
    db, store = new_store()
    try:
        store.purge_tombstones(datetime.datetime(2026, 1, 1))
        for year in (1000, 999):  # stored_time("0999-…") is "999-…", which sorts after "2026-…"
            event = dataclasses.replace(
                factories.event("create.end", 0, instance=f"i{year}"), timestamp=datetime.datetime(year, 6, 1)
            )
            assert store.apply_batch([event])[0].status == applying.AFTER_DELETE, year
    finally:
        db.dispose()
