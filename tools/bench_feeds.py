"""The benchmark's feeds: what Nova would publish, and what the tracker must end up with.

- ``lifecycle``: cloudsim's random lifecycle mix (builds, moves, shelves,
  deletes, snapshots…) over 1 000 compute nodes, about 20 000 messages at
  scale 1, with cloudsim's own oracle.
- ``audit``: the hourly ``instance.exists`` storm of a large cloud, N active
  instances over N/10 nodes, every compute sending its snapshots at the same
  time (round-robin across hosts). The payloads and envelopes come from
  cloudsim's builders; the oracle (each instance's flavor on its node) is
  computed here, independently of both cloudsim's state and the tracker.
  ``resent`` makes the next hours' audits of the same instances from it.
- ``probes``: ``instance.create.end`` of one instance on a node of its own,
  which nothing else touches; used to measure latency (see bench_latency).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import random
from collections.abc import Iterable, Iterator
from typing import Any

from cloudsim import Cloud
from cloudsim.envelope import fmt_timestamp, rand_uuid
from cloudsim.flavors import CATALOGUE, Flavor, disk_gb
from cloudsim.nova import Instance, Node, NovaState, fits_usage
from cloudsim.payloads import Extras

LIFECYCLE_NODES = 1000
LIFECYCLE_MESSAGES = 20_000
# Measured on cloudsim's mix over 1 000 nodes (seeds 1-5, 300 instances each): 29.3 to 30.5 messages
# per instance with notify_on_state_change = vm_and_task_state.
MESSAGES_PER_INSTANCE = 29.8
INSTANCES_PER_AUDIT_NODE = 10
PROBE_HOST_PREFIX = "probe"
_NODE_SHAPES = ((16, 65536, 500), (24, 98304, 800), (32, 131072, 1000))  # cloudsim's own shapes
_CPU_RATIO = 4.0  # Nova's default, as cloudsim's scheduler uses it


@dataclasses.dataclass
class Feed:
    """Messages as published (routing key, JSON body) and the truth about them."""

    name: str
    messages: list[tuple[str, str]]
    oracle: dict[str, Any]
    inventory: list[dict[str, Any]]
    flavors: list[dict[str, Any]]
    description: str

    def __len__(self) -> int:
        return len(self.messages)


def _wire(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Serialised once: every consumer gets the very same bytes."""
    return [(message["routing_key"], json.dumps(message["body"])) for message in messages]


def lifecycle_feed(scale: float = 1.0, seed: int = 42, nodes: int = LIFECYCLE_NODES) -> Feed:
    """cloudsim's lifecycle mix over ``nodes`` nodes, about 20 000 × ``scale`` messages."""
    instances = max(1, round(LIFECYCLE_MESSAGES * scale / MESSAGES_PER_INSTANCE))
    cloud = Cloud(seed, hosts=nodes)
    messages = cloud.run(instances, random.Random(seed))
    return Feed(
        "lifecycle",
        _wire(messages),
        cloud.oracle(),
        cloud.inventory(),
        cloud.flavors(),
        f"cloudsim lifecycle mix, {instances} instances on {nodes} nodes",
    )


def _node(prefix: str, number: int, rng: random.Random) -> Node:
    vcpus, memory_mb, local_gb = rng.choice(_NODE_SHAPES)
    host = f"{prefix}{number:05d}"
    return Node(host, f"{host}.example.org", vcpus, memory_mb, local_gb)


def _fitting_flavor(used: dict[str, int], node: Node, volume_backed: bool, rng: random.Random) -> Flavor:
    """A random flavor the node still has room for (a real scheduler placed it), else the smallest."""
    flavor = rng.choice(CATALOGUE)
    if fits_usage(used, node, flavor, volume_backed, _CPU_RATIO):
        return flavor
    return min(CATALOGUE, key=lambda f: (f.vcpus, f.memory_mb))


def _activate(cloud: Cloud, inst: Instance, node: Node) -> None:
    """The instance as a compute's periodic audit sees it: built, running on ``node``."""
    inst.host, inst.node = node.host, node.node
    inst.vm_state, inst.task_state, inst.power_state = "active", None, "running"
    inst.launched_at = cloud.now().replace(microsecond=0)


def audit_feed(instances: int = 20_000, seed: int = 42) -> Feed:
    """``instance.exists`` of ``instances`` active instances over ``instances // 10`` nodes."""
    rng = random.Random(seed)
    count = max(1, instances // INSTANCES_PER_AUDIT_NODE)
    cloud = Cloud(seed, hosts=0)
    cloud.state = NovaState([_node("cmp", number, rng) for number in range(1, count + 1)])
    nodes = cloud.state.nodes
    used = {node.key: {"vcpus": 0, "memory_mb": 0, "local_gb": 0} for node in nodes}
    placed: list[Instance] = []
    for number in range(instances):
        node = nodes[number % count]  # every compute audits at once: hosts interleave
        volume_backed = rng.random() < 0.2
        flavor = _fitting_flavor(used[node.key], node, volume_backed, rng)
        inst = cloud.new_instance(flavor=flavor, volume_backed=volume_backed)
        _activate(cloud, inst, node)
        _charge(used[node.key], flavor, volume_backed)
        cloud.exists(inst, node.host, cloud.periodic_ctx())
        placed.append(inst)
    return Feed(
        "audit",
        _wire(cloud.messages),
        audit_oracle(nodes, placed, cloud.projects),
        cloud.inventory(),
        cloud.flavors(),
        f"instance.exists of {instances} instances on {count} nodes",
    )


def resent(messages: Iterable[tuple[str, str]], hours: int, rng: random.Random) -> Iterator[tuple[str, str]]:
    """The same notifications as Nova sends them again ``hours`` later, one at a time: a new
    message id and ``_unique_id`` each, the timestamp ``hours`` on (so not duplicates: the
    tracker knows an event by its message id, or by its action, publisher and time).

    Three values replaced in the wire text rather than decoding both JSON layers and
    encoding them again: a soak re-sends a million messages, and this is 5 times cheaper."""
    for routing_key, body in messages:
        stamp = _wire_value(body, "timestamp")
        later = fmt_timestamp(datetime.datetime.fromisoformat(stamp) + datetime.timedelta(hours=hours))
        yield (
            routing_key,
            body.replace(_wire_value(body, "message_id"), str(rand_uuid(rng)), 1)
            .replace(_wire_value(body, "_unique_id"), rand_uuid(rng).hex, 1)
            .replace(f'timestamp\\": \\"{stamp}', f'timestamp\\": \\"{later}', 1),
        )


def _wire_value(body: str, key: str) -> str:
    """A string field of the inner notification, as it sits JSON-escaped in the wire body."""
    start = body.index(f'\\"{key}\\": \\"') + len(key) + 8
    return body[start : body.index('\\"', start)]


def _charge(usage: dict[str, int], flavor: Flavor, volume_backed: bool) -> None:
    usage["vcpus"] += flavor.vcpus
    usage["memory_mb"] += flavor.memory_mb
    usage["local_gb"] += disk_gb(flavor, volume_backed)


def audit_oracle(nodes: list[Node], placed: list[Instance], projects: list[str]) -> dict[str, Any]:
    """Every instance is active on its node: the node holds its flavor, its project counts it."""
    node_rows: dict[str, dict[str, Any]] = {
        node.key: {
            "host": node.host,
            "node": node.node,
            "vcpus": 0,
            "memory_mb": 0,
            "local_gb": 0,
            "running_vms": 0,
        }
        for node in nodes
    }
    project_rows = {
        project: {"vcpus": 0, "memory_mb": 0, "local_gb": 0, "instances": 0} for project in projects
    }
    for inst in placed:
        row, project = node_rows[f"{inst.host}/{inst.node}"], project_rows[inst.project_id]
        for usage in (row, project):
            _charge(usage, inst.flavor, inst.volume_backed)
        row["running_vms"] += 1
        project["instances"] += 1
    return {"nodes": node_rows, "projects": project_rows}


def probe_feed(count: int, seed: int = 4242) -> Feed:
    """``create.end`` of one new instance on each of ``count`` nodes that nothing else touches."""
    rng = random.Random(seed)
    cloud = Cloud(seed, hosts=0)
    cloud.state = NovaState([_node(PROBE_HOST_PREFIX, number, rng) for number in range(1, count + 1)])
    for node in cloud.state.nodes:
        inst = cloud.new_instance(flavor=rng.choice(CATALOGUE[:5]))
        _activate(cloud, inst, node)
        cloud.notify(
            inst,
            "create",
            "end",
            source="nova-compute",
            host=node.host,
            ctx=cloud.user_ctx(inst),
            kind="create",
            extras=Extras(with_bdms=True),
        )
    return Feed(
        "probes",
        _wire(cloud.messages),
        cloud.oracle(),
        cloud.inventory(),
        cloud.flavors(),
        f"create.end on {count} fresh nodes",
    )


def interleave(feed: Feed, probes: Feed, every: int) -> Feed:
    """``feed`` with one probe after every ``every`` of its messages; the truths merged."""
    messages: list[tuple[str, str]] = []
    remaining = iter(probes.messages)
    for number, message in enumerate(feed.messages, 1):
        messages.append(message)
        probe = next(remaining, None) if number % every == 0 else None
        if probe is not None:
            messages.append(probe)
    messages.extend(remaining)
    return Feed(
        f"{feed.name}+probes",
        messages,
        {
            "nodes": feed.oracle["nodes"] | probes.oracle["nodes"],
            "projects": feed.oracle["projects"] | probes.oracle["projects"],
        },
        feed.inventory + probes.inventory,
        feed.flavors,
        f"{feed.description}, one probe every {every} messages",
    )
