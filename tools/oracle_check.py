"""Compare the tracker's usage with the cloud simulator's oracle.

Used by the demo (``tools/demo``) and by the tests; as a script::

    python tools/oracle_check.py --config-file demo/tracker.conf demo/oracle.json
"""

import json
import sys
from typing import Any

from tracker.cmd import common
from tracker.db.api import NodeInventory, Store
from tracker.db.flavors import from_record

_NODE_FIELDS = (("vcpus", "vcpus"), ("memory_mb", "memory_mb"), ("local_gb", "local_gb"))
_PROJECT_FIELDS = ("vcpus", "memory_mb", "local_gb", "instances")


def register(store: Store, inventory: list[dict[str, Any]], flavors: list[dict[str, Any]]) -> None:
    """What an operator does first: node inventory, and flavors for the legacy format."""
    for node in inventory:
        sizes = NodeInventory(vcpus=node["vcpus"], memory_mb=node["memory_mb"], local_gb=node["local_gb"])
        store.set_node(node["host"], node["node"], sizes)
    store.set_flavors([from_record(flavor) for flavor in flavors])


def differences(
    oracle: dict[str, Any], nodes: list[dict[str, Any]], projects: list[dict[str, Any]]
) -> list[str]:
    """Every node or project figure on which the tracker and the oracle disagree."""
    return _node_differences(oracle["nodes"], nodes) + _project_differences(oracle["projects"], projects)


def _node_differences(expected: dict[str, dict[str, Any]], nodes: list[dict[str, Any]]) -> list[str]:
    views = {(v["host"], v["node"]): v for v in nodes}
    problems = []
    for truth in expected.values():
        view = views.get((truth["host"], truth["node"]))
        got = _node_figures(view)
        want = {name: truth[key] for name, key in _NODE_FIELDS} | {"running_vms": truth["running_vms"]}
        if got != want:
            problems.append(f"node {truth['host']}/{truth['node']}: tracker {got} != oracle {want}")
    return problems


def _node_figures(view: dict[str, Any] | None) -> dict[str, int]:
    if view is None:
        return {"vcpus": 0, "memory_mb": 0, "local_gb": 0, "running_vms": 0}
    used = {name: view["resources"][name]["used"] for name, _ in _NODE_FIELDS}
    return used | {"running_vms": view["running_vms"]}


def _project_differences(expected: dict[str, dict[str, Any]], projects: list[dict[str, Any]]) -> list[str]:
    rows = {p["project_id"]: p for p in projects}
    problems = []
    for project_id, truth in expected.items():
        row = rows.get(project_id, {})
        got = {name: row.get(name, 0) for name in _PROJECT_FIELDS}
        want = {name: truth[name] for name in _PROJECT_FIELDS}
        if got != want:
            problems.append(f"project {project_id}: tracker {got} != oracle {want}")
    return problems


def main(argv: list[str]) -> int:
    """A database that cannot be read is one line, never taken for a difference."""
    return common.run(lambda: _compare(argv))


def _compare(argv: list[str]) -> int:
    *tracker_args, oracle_path = argv
    conf = common.parse_args(tracker_args)
    store = Store(common.database(conf), conf)
    with open(oracle_path, encoding="utf-8") as handle:
        oracle = json.load(handle)
    problems = differences(oracle, store.node_views(), store.project_usage())
    for problem in problems:
        print(problem)
    nodes, projects = len(oracle["nodes"]), len(oracle["projects"])
    verdict = "MATCHES" if not problems else f"DIFFERS in {len(problems)} place(s) from"
    print(f"tracker {verdict} the simulator's oracle ({nodes} nodes, {projects} projects)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
