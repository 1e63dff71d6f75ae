"""Feed a simulated cloud's notifications to the tracker and compare with the oracle."""

import collections
from collections.abc import Iterable
from typing import Any

import oracle_check
from cloudsim import Cloud

from tracker.bus import decide
from tracker.db.api import NodeInventory, Store
from tracker.db.flavors import from_record


def register(store: Store, cloud: Cloud) -> None:
    """What an operator does first: node inventory, and flavors for the legacy format."""
    for node in cloud.inventory():
        inventory = NodeInventory(vcpus=node["vcpus"], memory_mb=node["memory_mb"], local_gb=node["local_gb"])
        store.set_node(node["host"], node["node"], inventory)
    store.set_flavors([from_record(flavor) for flavor in cloud.flavors()])


def apply_all(store: Store, messages: Iterable[dict[str, Any]]) -> collections.Counter[str]:
    """The worker's path without the broker: decide, then apply."""
    outcomes: collections.Counter[str] = collections.Counter()
    for message in messages:
        decision = decide.decide(message["body"], 1 << 20)
        assert decision.kind != decide.POISON, decision.reason
        outcomes[store.apply(decision.event).status if decision.event else decision.kind] += 1
    return outcomes


def differences(store: Store, cloud: Cloud) -> list[str]:
    return oracle_check.differences(cloud.oracle(), store.node_views(), store.project_usage())
