"""Capacity as bars: ``tracker-status --format json`` on stdin, one row per node.

tracker-status --config-file demo/tracker.conf --format json | python tools/demo_view.py
"""

import json
import sys
from typing import Any

from tracker import escape

RESOURCES = (("vcpus", "vCPU"), ("memory_mb", "RAM"), ("local_gb", "disk"))
WIDTH = 16


def bar(used: int, capacity: int | None) -> str:
    """``[#######.........]  44%``; a node without inventory has no capacity to fill."""
    if not capacity:
        return f"[{'?' * WIDTH}]    ?"
    share = used / capacity
    filled = min(WIDTH, round(share * WIDTH))
    return f"[{'#' * filled}{'.' * (WIDTH - filled)}] {share:4.0%}"


def row(node: dict[str, Any]) -> str:
    name = escape.text(f"{node['host']}", 20).ljust(20)
    cells = "  ".join(
        f"{label} {bar(node['resources'][key]['used'], node['resources'][key]['capacity'])}"
        for key, label in RESOURCES
    )
    return f"{name} {node['running_vms']:>3} VMs  {cells}"


def main() -> int:
    status = json.load(sys.stdin)
    nodes = status["nodes"]
    print("\n".join(row(node) for node in nodes) if nodes else "(no compute nodes yet)")
    projects = status["projects"]
    print(f"\n{len(projects)} projects, {sum(p['instances'] for p in projects)} instances counted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
