"""Typed, immutable values for what the accounting needs from a Nova notification."""

import dataclasses
import datetime
import hashlib

_MAX_KEY = 255


@dataclasses.dataclass(frozen=True)
class Flavor:
    """The sizes of Nova's embedded flavor; ``swap`` is in MiB as in Nova."""

    vcpus: int
    memory_mb: int
    root_gb: int
    ephemeral_gb: int
    swap: int
    name: str | None = None
    flavorid: str | None = None


@dataclasses.dataclass(frozen=True)
class InstanceEvent:
    """One instance notification, normalized across the versioned and legacy formats.

    ``action`` is the versioned event type without ``instance.``
    (``resize_prep.end``), whatever format the notification came in.
    ``host``/``node`` are the payload's, i.e. ``instance.host``/``node`` at
    emit time; ``publisher_host`` is the host that emitted it, the only hint
    of a move's destination before the instance moves.
    """

    message_id: str
    action: str
    timestamp: datetime.datetime
    publisher_host: str | None
    instance_uuid: str
    project_id: str | None
    host: str | None
    node: str | None
    vm_state: str | None
    task_state: str | None
    flavor: Flavor | None
    new_flavor: Flavor | None = None
    new_flavor_name: str | None = None
    boot_from_volume: bool = False
    # Legacy payloads lack swap and name the new flavor only: the flavor
    # catalogue completes them before they are stored.
    legacy: bool = False
    # Nova's request id (versioned payloads carry it): it ties a log line to
    # Nova's own logs of the same request. Not a secret, unlike the context.
    request_id: str | None = None

    @property
    def dedupe_key(self) -> str:
        """Identity of the same event published twice under two message ids."""
        key = f"{self.action}|{self.publisher_host}|{self.timestamp.isoformat()}"
        # within its 255-character column whatever the names' lengths
        return key if len(key) <= _MAX_KEY else "sha256:" + hashlib.sha256(key.encode()).hexdigest()
