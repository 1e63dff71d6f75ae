"""Real Nova against real Placement: the captured feeds replayed, compared node by node.

``tools/nova-capture`` ran Nova's functional stack (API, conductor, scheduler,
three fake computes, Placement) through lifecycles and their failure paths,
with Nova's default notification settings but ``notification_format = both``,
and recorded every notification as oslo.messaging put it on the wire and,
after each scenario, Placement's usage of every resource provider. Here each
format's feed goes through the worker's own path (decide, then a batch store),
scenario by scenario, and after each scenario every node must hold what
Placement holds: in order, and shuffled within windows with duplicates.
"""

import json
import logging
import pathlib
import random
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import make_conf
from tests.oracle import events_of
from tracker.bus.monitor import Monitor
from tracker.db import migration
from tracker.db.api import NodeInventory, Store
from tracker.db.apply import PARKED, Outcome
from tracker.db.engine import Database
from tracker.db.models import ParkedFailure
from tracker.events import envelope, fields, versioned
from tracker.events.model import FAILURE, Flavor, InstanceEvent
from tracker.events.redact import redact
from tracker.metrics import Metrics

DATA = pathlib.Path(__file__).parent.parent / "data" / "nova"
FORMATS = ("versioned", "legacy")
PLACEMENT_CLASSES = (("vcpus", "VCPU"), ("memory_mb", "MEMORY_MB"), ("local_gb", "DISK_GB"))


def _feed(fmt: str) -> list[dict[str, Any]]:
    with open(DATA / f"feed.{fmt}.jsonl") as lines:
        return [json.loads(line) for line in lines]


def _truths() -> list[dict[str, Any]]:
    with open(DATA / "truth.json") as truth:
        return list(json.load(truth))


def _scenarios() -> list[str]:
    return [truth["scenario"] for truth in _truths()]


@pytest.fixture
def placement_store(tmp_path: pathlib.Path) -> Iterator[Store]:
    """Placement rounds swap up to a GiB: the tracker is told to do the same."""
    conf = make_conf(f"sqlite:///{tmp_path}/tracker.sqlite", accounting={"disk_rounding": "placement"})
    db = Database.from_conf(conf)
    migration.upgrade(db.engine)
    yield Store(db, conf)
    db.dispose()


def _register(store: Store) -> None:
    """Nodes as Placement has them (fake driver: node name = host name), and the flavor
    catalogue the legacy format needs, from the flavors the versioned payloads embed."""
    for name, inventory in _truths()[0]["inventories"].items():
        store.set_node(
            name,
            name,
            NodeInventory(
                vcpus=inventory["VCPU"]["total"],
                memory_mb=inventory["MEMORY_MB"]["total"],
                local_gb=inventory["DISK_GB"]["total"],
            ),
        )
    store.set_flavors(sorted(_embedded_flavors(), key=lambda f: str(f.flavorid)))


def _embedded_flavors() -> set[Flavor]:
    found = set()
    for line in _feed("versioned"):
        data = envelope.load_body(line["body"], 1 << 22)["payload"].get(versioned.DATA_KEY, {})
        for key in ("flavor", "new_flavor"):
            if isinstance(data.get(key), dict):
                found.add(fields.flavor(data[key][versioned.DATA_KEY]))
    return found


def _events(lines: list[dict[str, Any]]) -> list[InstanceEvent]:
    # Nova's captured exception payloads carry whole tracebacks: a larger bound than the default
    return events_of(lines, 1 << 22)


def _disorder(events: list[InstanceEvent], seed: int, window: int = 12) -> list[InstanceEvent]:
    """Shuffled within windows, and one event in eight delivered twice."""
    rng = random.Random(seed)
    mixed: list[InstanceEvent] = []
    for start in range(0, len(events), window):
        chunk = events[start : start + window]
        chunk += [event for event in chunk if rng.random() < 0.125]
        rng.shuffle(chunk)
        mixed += chunk
    return mixed


def _usage(store: Store) -> dict[str, dict[str, int]]:
    return {
        view["node"]: {cls: view["resources"][name]["used"] for name, cls in PLACEMENT_CLASSES}
        for view in store.node_views()
    }


def _expected(truth: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {
        node: {cls: usages.get(cls, 0) for _name, cls in PLACEMENT_CLASSES}
        for node, usages in truth["usages"].items()
    }


def _replay(store: Store, fmt: str, order: Any) -> None:
    _register(store)
    feed = _feed(fmt)
    for number, truth in enumerate(_truths()):
        lines = [line for line in feed if line["scenario"] == truth["scenario"]]
        store.apply_batch(order(_events(lines), number))
        assert _usage(store) == _expected(truth), f"after {truth['scenario']} ({fmt})"
    assert store.audit() == []


def test_the_captures_cover_every_lifecycle_and_failure_path():
    assert {
        "boot_from_volume",
        "shelve_offload_unshelve",
        "soft_delete_restore",
        "resize_confirm",
        "resize_revert",
        "cold_migration_confirm",
        "live_migration",
        "evacuate",
        "resize_fails_on_source_rollback",
        "resize_fails_on_source_error",
        "cold_migration_fails_at_finish",
        "cold_migration_fails_at_prep",
        "live_migration_rollback",
        "live_migration_fails_in_driver",
        "evacuation_fails",
        "resize_rescheduled",
    } <= set(_scenarios())
    for fmt in FORMATS:
        assert any(
            json.loads(json.loads(line["body"])["oslo.message"])["priority"] == "ERROR" for line in _feed(fmt)
        )


@pytest.mark.parametrize("fmt", FORMATS)
def test_in_order_matches_placement_after_every_scenario(placement_store, fmt):
    _replay(placement_store, fmt, lambda events, _number: events)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("fmt", FORMATS)
def test_disordered_with_duplicates_matches_placement(placement_store, fmt, seed):
    _replay(placement_store, fmt, lambda events, number: _disorder(events, seed * 100 + number))


def _one_by_one(store: Store, order: Any, statuses: list[str]) -> Any:
    """As a worker applying each message alone, in ``order``: the scenario's last
    event is left for the replay's own batch."""

    def apply(events: list[InstanceEvent], number: int) -> list[InstanceEvent]:
        ordered = order(events, number)
        for event in ordered[:-1]:
            statuses.extend(verdict.status for verdict in store.apply_batch([event]))
        return ordered[-1:]

    return apply


def _errors_first(events: list[InstanceEvent], _number: int) -> list[InstanceEvent]:
    """ERROR notifications travel on their own queue: a worker may drain it first."""
    return sorted(events, key=lambda event: not _is_error(event))


def _is_error(event: InstanceEvent) -> bool:
    return event.action == FAILURE or event.action.endswith(".error")


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_event_per_batch_matches_placement(placement_store, fmt):
    """Shuffled within windows with duplicates, every event alone."""
    _replay(placement_store, fmt, _one_by_one(placement_store, _disorder, []))


@pytest.mark.parametrize("fmt", FORMATS)
def test_errors_first_one_event_per_batch_matches_placement(placement_store, fmt):
    """Every captured move failure comes before the events naming its request: a versioned
    one is parked, then adopted by the first event of its request."""
    statuses: list[str] = []
    _replay(placement_store, fmt, _one_by_one(placement_store, _errors_first, statuses))
    if fmt == "versioned":  # those of other requests (a live migration's) stay parked
        adopted = statuses.count(PARKED) - _parked_count(placement_store)
        assert adopted >= len(MOVE_FAILURES)


# The captured scenarios whose failure changes allocations (lifecycle._failure).
MOVE_FAILURES = (
    "resize_fails_on_source_rollback",
    "resize_fails_on_source_error",
    "cold_migration_fails_at_finish",
    "cold_migration_fails_at_prep",
)


def _parked_count(store: Store) -> int:
    with store.db.transaction() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(ParkedFailure)) or 0)


def test_the_wire_format_is_oslo_messagingv2():
    """Each body is the 2.0 envelope; the context is dropped on decode."""
    line = _feed("versioned")[0]
    outer = json.loads(line["body"])
    assert set(outer) == {"oslo.version", "oslo.message"} and outer["oslo.version"] == "2.0"
    inner = json.loads(outer["oslo.message"])
    assert {
        "message_id",
        "publisher_id",
        "event_type",
        "priority",
        "payload",
        "timestamp",
        "_unique_id",
    } <= set(inner)
    assert any(key.startswith("_context_") for key in inner)
    decoded = envelope.decode(line["body"], 1 << 22)
    assert not any(key.startswith("_context_") for key in decoded.payload)
    assert decoded.request_id == inner["_context_request_id"]


FAKE_TOKEN = "gAAAAABfake-keystone-token-0123456789"


def _with_token(body: str) -> str:
    """oslo.messaging's notifier sends the token as null; a driver or a Nova that did
    not would put it here."""
    outer = json.loads(body)
    inner = json.loads(outer["oslo.message"])
    assert "_context_auth_token" in inner
    inner["_context_auth_token"] = FAKE_TOKEN
    return json.dumps({**outer, "oslo.message": json.dumps(inner)})


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_token_in_the_captured_bodies_reaches_no_row_log_or_letter(placement_store, caplog, fmt):
    caplog.set_level(logging.DEBUG)
    bodies = [_with_token(line["body"]) for line in _feed(fmt)]
    _register(placement_store)
    monitor = Monitor(make_conf(), Metrics())
    events = _events([{"body": body} for body in bodies])
    for event, verdict in zip(events, placement_store.apply_batch(events), strict=True):
        assert isinstance(verdict, Outcome)
        monitor.outcome(event, verdict)
    assert FAKE_TOKEN not in _every_row(placement_store)
    assert FAKE_TOKEN not in caplog.text
    assert all(FAKE_TOKEN not in redact(body, 1 << 22).text for body in bodies)


def _every_row(store: Store) -> str:
    with store.db.transaction() as session:
        tables = sa.MetaData()
        tables.reflect(session.connection())
        return repr([session.execute(sa.select(table)).all() for table in tables.sorted_tables])
