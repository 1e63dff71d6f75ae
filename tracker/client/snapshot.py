"""A snapshot of every node's capacity, for a view that starts cold: the output of
``tracker-status --format json``, or the tracker's database read over a read-only
connection. Either gives the same payloads as the notifications."""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tracker.db import nodes, outbox
from tracker.db.engine import with_driver

Payloads = list[dict[str, Any]]


def from_status(document: str | Path | Mapping[str, Any] | list[dict[str, Any]]) -> Payloads:
    """``tracker-status --format json`` output: a path, its text, or it parsed."""
    if isinstance(document, Path):
        document = document.read_text(encoding="utf-8")
    parsed: Any = json.loads(document) if isinstance(document, str) else document
    listed: list[dict[str, Any]] = parsed["nodes"] if isinstance(parsed, Mapping) else parsed
    return [dict(payload) for payload in listed]


def from_database(url: str, default_availability_zone: str = "nova") -> Payloads:
    """Every node as the tracker stores it; the connection can write nothing.
    ``default_availability_zone``: the tracker's (Nova's) option of that name."""
    parsed = with_driver(sa.make_url(url))
    engine = sa.create_engine(parsed, **_read_only(parsed))
    try:
        with engine.connect() as connection:
            found = [nodes.NodeRecord.from_row(row) for row in connection.execute(nodes.select())]
            return outbox.payloads(connection, found, default_availability_zone)
    finally:
        engine.dispose()


def _read_only(url: sa.URL) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend == "postgresql":
        return {"connect_args": {"options": "-c default_transaction_read_only=on"}}
    if backend in ("mysql", "mariadb"):
        return {"connect_args": {"init_command": "SET SESSION TRANSACTION READ ONLY"}}
    if backend == "sqlite" and url.database:
        return {"creator": lambda: _sqlite_read_only(str(url.database))}
    return {}


def _sqlite_read_only(path: str) -> Any:
    import sqlite3  # noqa: PLC0415 - only for this backend

    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
