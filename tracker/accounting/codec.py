"""JSON-safe dicts for the values the database keeps (state snapshots, event history)."""

import dataclasses
import datetime
import functools
from typing import Any

from tracker.accounting.state import InstanceState, Location, Move
from tracker.events.model import Failure, Flavor, InstanceEvent


def dump(value: Any) -> Any:
    """Dataclasses to dicts, datetimes to ISO strings; inverse of the loaders below."""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    cls = type(value)
    names = _FIELD_NAMES[cls] if cls in _FIELD_NAMES else _field_names(cls)
    if names is None:
        return value
    fields = {name: getattr(value, name) for name in names}
    for name, field in fields.items():
        # most fields are plain values: no call for them
        if type(field) not in _PLAIN:
            fields[name] = dump(field)
    return fields


# Per class, found once: every event and state of a batch is dumped (the hot path).
_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}
# What dumps as itself (exact types: a subclass goes through dump()).
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _field_names(cls: type) -> tuple[str, ...] | None:
    names = tuple(field.name for field in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None
    _FIELD_NAMES[cls] = names
    return names


def load_flavor(data: dict[str, Any] | None) -> Flavor | None:
    return None if data is None else Flavor(**data)


def load_location(data: dict[str, Any] | None) -> Location | None:
    return None if data is None else Location(**data)


def load_move(data: dict[str, Any] | None) -> Move | None:
    if data is None:
        return None
    return Move(
        **{
            **data,
            "source": load_location(data["source"]),
            "dest": Location(**data["dest"]),
            "old_flavor": load_flavor(data["old_flavor"]),
            "new_flavor": load_flavor(data["new_flavor"]),
        }
    )


def _load_time(value: str | None) -> datetime.datetime | None:
    return None if value is None else datetime.datetime.fromisoformat(value)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Only the fields ``cls`` has: rows written by another version still load."""
    names = _names(cls)
    return {key: value for key, value in data.items() if key in names}


@functools.cache
def _names(cls: type) -> frozenset[str]:
    """Found once per class: every stored event a batch decodes asks."""
    return frozenset(field.name for field in dataclasses.fields(cls))


def load_state(data: dict[str, Any]) -> InstanceState:
    return InstanceState(
        **{
            **_known(InstanceState, data),
            "location": load_location(data["location"]),
            "flavor": load_flavor(data["flavor"]),
            "move": load_move(data["move"]),
            "failed_move": load_move(data.get("failed_move")),
            "last_timestamp": _load_time(data["last_timestamp"]),
        }
    )


def load_event(data: dict[str, Any]) -> InstanceEvent:
    return InstanceEvent(
        **{
            **_known(InstanceEvent, data),
            "timestamp": datetime.datetime.fromisoformat(data["timestamp"]),
            "flavor": load_flavor(data["flavor"]),
            "new_flavor": load_flavor(data["new_flavor"]),
            "failure": _load_failure(data.get("failure")),
        }
    )


def _load_failure(data: dict[str, Any] | None) -> Failure | None:
    return None if data is None else Failure(**data)
