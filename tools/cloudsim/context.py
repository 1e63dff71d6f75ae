"""Request contexts, flattened into ``_context_*`` keys like oslo's pack_context.

Each API action runs under the requesting user's context with a fresh
request_id; periodic tasks (audit, reclaim) run under an admin context without
user/project, which is why their payload ``request_id`` is None
(``InstancePayload.__init__`` only copies it when both are set).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Context:
    """The fields of ``nova.context.RequestContext.to_dict()`` we fill."""

    user_id: str | None
    project_id: str | None
    request_id: str
    roles: tuple[str, ...]
    is_admin: bool
    auth_token: str | None
    user_name: str | None
    project_name: str | None
    remote_address: str | None
    timestamp: datetime

    def to_dict(self) -> dict[str, Any]:
        """Same keys as nova's RequestContext.to_dict()."""
        return {
            "user": self.user_id,
            "project_id": self.project_id,
            "system_scope": None,
            "project": self.project_id,
            "domain": None,
            "user_domain": "default",
            "project_domain": "default",
            "is_admin": self.is_admin,
            "read_only": False,
            "show_deleted": False,
            "auth_token": self.auth_token,
            "request_id": self.request_id,
            "global_request_id": None,
            "resource_uuid": None,
            "roles": list(self.roles),
            "user_identity": f"{self.user_id or '-'} {self.project_id or '-'} - default default",
            "is_admin_project": True,
            "user_id": self.user_id,
            "read_deleted": "no",
            "remote_address": self.remote_address,
            "timestamp": self.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "quota_class": None,
            "user_name": self.user_name,
            "service_catalog": [],
            "project_name": self.project_name,
        }

    def packed(self) -> dict[str, Any]:
        """``pack_context``: one ``_context_<key>`` entry per context key."""
        return {f"_context_{key}": value for key, value in self.to_dict().items()}


def fake_token(rng: random.Random) -> str:
    """A Fernet-looking token: a fake secret the tracker must not log."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "gAAAAAB" + "".join(rng.choice(alphabet) for _ in range(176))


def request_id(rng: random.Random) -> str:
    """``req-<uuid4>`` as oslo.context generates it."""
    return f"req-{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def user_context(
    rng: random.Random,
    user_id: str,
    project_id: str,
    now: datetime,
    admin: bool = False,
    project_name: str | None = None,
) -> Context:
    """Context of an API request by a (possibly admin) user."""
    roles = ("admin", "member", "reader") if admin else ("member", "reader")
    return Context(
        user_id,
        project_id,
        request_id(rng),
        roles,
        admin,
        fake_token(rng),
        "admin" if admin else f"user-{user_id[:6]}",
        project_name or ("admin" if admin else f"project-{project_id[:6]}"),
        f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        now,
    )


def admin_periodic_context(rng: random.Random, now: datetime) -> Context:
    """``get_admin_context()`` used by periodic tasks: no user, no project."""
    return Context(None, None, request_id(rng), (), True, None, None, None, None, now)
