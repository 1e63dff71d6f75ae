"""Feed a simulated cloud's notifications to the tracker and compare with the oracle."""

import collections
from collections.abc import Callable, Iterable
from typing import Any

import oracle_check
from cloudsim import Cloud

from tracker.bus import decide
from tracker.db.api import Store
from tracker.events.model import InstanceEvent


def register(store: Store, cloud: Cloud) -> None:
    oracle_check.register(store, cloud.inventory(), cloud.flavors())


def events_of(messages: Iterable[dict[str, Any]], max_bytes: int = 1 << 20) -> list[InstanceEvent]:
    """Decide each message as the worker does; only events to apply are kept."""
    events = []
    for message in messages:
        decision = decide.decide(message["body"], max_bytes)
        assert decision.kind != decide.POISON, decision.reason
        if decision.event is not None:
            events.append(decision.event)
    return events


def apply_in_batches(store: Store, events: list[InstanceEvent], sizes: Callable[[], int]) -> list[str]:
    """Each event's verdict, applied in consecutive batches of ``sizes()`` events."""
    verdicts: list[str] = []
    while len(verdicts) < len(events):
        batch = events[len(verdicts) : len(verdicts) + sizes()]
        verdicts += [getattr(verdict, "status", "poison") for verdict in store.apply_batch(batch)]
    return verdicts


def apply_all(
    store: Store, messages: Iterable[dict[str, Any]], sizes: Callable[[], int] = lambda: 1
) -> collections.Counter[str]:
    """The worker's path without the broker: decide, then apply in batches."""
    return collections.Counter(apply_in_batches(store, events_of(messages), sizes))


def differences(store: Store, cloud: Cloud) -> list[str]:
    return oracle_check.differences(cloud.oracle(), store.node_views(), store.project_usage())
