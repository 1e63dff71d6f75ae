"""Checked access to payload fields: a wrong type is an InvalidPayload, never a crash."""

from collections.abc import Mapping
from typing import Any

from tracker import escape
from tracker.errors import InvalidPayload
from tracker.events.model import Flavor

# Nova stores these sizes in 32-bit integer columns; anything larger is corrupt.
MAX_SIZE = 2**31 - 1
# Nova's name columns (host, node, project) are 255 characters, uuids 36.
MAX_NAME = 255
UUID_LENGTH = 36
VM_STATE_LENGTH = 32  # the instances table's columns
TASK_STATE_LENGTH = 64


def checked_text(value: object, key: str, max_length: int = MAX_NAME) -> str:
    """A name as Nova could have written it: a string, printable, within its column.

    A newline or an escape sequence in a host name would forge log lines and
    terminal output downstream; Nova never sends one, so it is poison here.
    """
    if not isinstance(value, str):
        raise InvalidPayload(f"{key} is {type(value).__name__}, not a string")
    if len(value) > max_length:
        raise InvalidPayload(f"{key} is {len(value)} characters long, more than {max_length}")
    if not value.isprintable():
        raise InvalidPayload(f"{key}={escape.text(value, 80)} holds control or unprintable characters")
    return value


def optional_text(data: Mapping[str, Any], key: str, max_length: int = MAX_NAME) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    return checked_text(value, key, max_length)


def required_text(data: Mapping[str, Any], key: str, max_length: int = MAX_NAME) -> str:
    value = optional_text(data, key, max_length)
    if value is None:
        raise InvalidPayload(f"payload lacks {key}")
    return value


def size(data: Mapping[str, Any], key: str, default: int | None = None) -> int:
    """A non-negative integer size; ``default`` when absent, if one is allowed."""
    value = data.get(key, default)
    if value is None:
        raise InvalidPayload(f"payload lacks {key}")
    # the value itself is not quoted: it may be anything, a context object included
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayload(f"{key} is {type(value).__name__}, not an integer")
    if not 0 <= value <= MAX_SIZE:
        raise InvalidPayload(f"{key} is out of range (0 to {MAX_SIZE})")
    return value


def mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidPayload(f"{key} is not an object")
    return value


def flavor(data: Mapping[str, Any], name_key: str = "name", id_key: str = "flavorid") -> Flavor:
    """Flavor sizes under Nova's field names; a missing swap or ephemeral disk is 0."""
    return Flavor(
        vcpus=size(data, "vcpus"),
        memory_mb=size(data, "memory_mb"),
        root_gb=size(data, "root_gb"),
        ephemeral_gb=size(data, "ephemeral_gb", default=0),
        swap=size(data, "swap", default=0),
        name=optional_text(data, name_key),
        flavorid=optional_text(data, id_key),
    )
