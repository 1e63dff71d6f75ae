"""oslo.messaging ``messagingv2`` envelope and the legacy event-name mapping.

The AMQP body is ``{"oslo.version": "2.0", "oslo.message": <json string>}``
(``_drivers/common.py`` serialize_msg); the inner dict is what
``Notifier._notify`` builds plus ``_unique_id`` and the packed context.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime
from typing import Any

Message = dict[str, Any]

# versioned action prefix -> legacy action prefix (spec section "Legacy").
LEGACY_ACTIONS: dict[str, str] = {
    "resize_prep": "resize.prep",
    "resize_finish": "finish_resize",
    "resize_confirm": "resize.confirm",
    "resize_revert": "resize.revert",
    "live_migration_pre": "live_migration.pre",
    "live_migration_post": "live_migration._post",
    "live_migration_post_dest": "live_migration.post.dest",
    "live_migration_rollback": "live_migration._rollback",
    "live_migration_rollback_dest": "live_migration.rollback.dest",
    "live_migration_abort": "live.migration.abort",
    "live_migration_force_complete": "live.migration.force.complete",
    "rebuild_scheduled": "rebuild.scheduled",
}


def versioned_event_type(action: str, phase: str | None) -> str:
    """``instance.<action>[.<phase>]``."""
    return f"instance.{action}" + (f".{phase}" if phase else "")


def legacy_event_type(action: str, phase: str | None) -> str:
    """``compute.instance.<mapped action>[.<phase>]``."""
    return f"compute.instance.{LEGACY_ACTIONS.get(action, action)}" + (f".{phase}" if phase else "")


def routing_key(fmt: str, priority: str) -> str:
    """``<topic>.<priority lowercased>`` on the ``nova`` exchange."""
    topic = "versioned_notifications" if fmt == "versioned" else "notifications"
    return f"{topic}.{priority.lower()}"


def fmt_timestamp(value: datetime) -> str:
    """``str(timeutils.utcnow())``: naive UTC, microseconds always shown."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def rand_uuid(rng: random.Random) -> uuid.UUID:
    """A reproducible uuid4 drawn from ``rng``."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def make_message(
    *,
    fmt: str,
    event_type: str,
    publisher_id: str,
    priority: str,
    payload: dict[str, Any],
    context: dict[str, Any],
    timestamp: datetime,
    rng: random.Random,
) -> Message:
    """One notification as it sits on the wire, plus its routing key."""
    inner: dict[str, Any] = {
        "message_id": str(rand_uuid(rng)),
        "publisher_id": publisher_id,
        "event_type": event_type,
        "priority": priority,
        "payload": payload,
        "timestamp": fmt_timestamp(timestamp),
        "_unique_id": rand_uuid(rng).hex,
    }
    inner.update(context)
    return {
        "routing_key": routing_key(fmt, priority),
        "body": {"oslo.version": "2.0", "oslo.message": json.dumps(inner)},
    }


def inner(message: Message) -> dict[str, Any]:
    """Decode the inner notification dict of a message."""
    decoded: dict[str, Any] = json.loads(message["body"]["oslo.message"])
    return decoded
