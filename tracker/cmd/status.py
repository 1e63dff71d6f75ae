"""``tracker-status``: every node's inventory, usage and capacity."""

import datetime
import json
import sys
import time
from typing import Any

from oslo_config import cfg

from tracker import escape, health
from tracker.cmd import common
from tracker.db.api import Store

_COLUMNS = ("vcpus", "memory_mb", "local_gb")

cli_opts = [
    cfg.StrOpt("format", default="table", choices=["table", "json"], help="Output format."),
    cfg.BoolOpt("projects", default=False, help="Show per-project usage and limits only."),
    cfg.FloatOpt("watch", default=0.0, min=0.0, help="Redraw every N seconds (0: print once)."),
    cfg.BoolOpt(
        "check-health",
        default=False,
        help="Liveness probe: exit 0 if [worker] health_file is fresh, 1 if not. Reads no database.",
    ),
    cfg.FloatOpt("max-age", default=30.0, min=1.0, help="With --check-health: the freshness limit, seconds."),
]


def main(argv: list[str] | None = None) -> int:
    return common.run(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    conf = common.start(argv, cli_opts, description="Show node capacity and project usage.")
    if conf.check_health:
        return check_health(conf)
    store = Store(common.database(conf), conf)
    while True:
        with common.database_errors(store.db):
            if conf.projects:
                text = render_projects(project_limits(store), conf.format)
            else:
                text = render(store.node_views(), store.project_usage(), conf.format)
        if conf.watch:
            sys.stdout.write("\033[2J\033[H")  # clear the terminal, like watch(1)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        if not conf.watch:
            return 0
        time.sleep(conf.watch)


def check_health(conf: cfg.ConfigOpts) -> int:
    if not conf.worker.health_file:
        print("no [worker] health_file configured", file=sys.stderr)
        return 2
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    paths = health.paths(conf.worker.health_file, conf.worker.workers)
    healthy = True
    for path in paths:
        fresh, why = health.check(path, conf.max_age, now)
        healthy = healthy and fresh
        # with several worker processes, each line names the one it is about
        print(escape.text(why if len(paths) == 1 else f"{path}: {why}", 2000))
    return 0 if healthy else 1


def render(nodes: list[dict[str, Any]], projects: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"nodes": nodes, "projects": projects}, indent=2, sort_keys=True)
    return "\n".join([*_node_table(nodes), "", *_project_table(projects)])


def project_limits(store: Store) -> list[dict[str, Any]]:
    """Each project's usage with its effective limits (-1: none)."""
    defaults, overrides = store.quota_limits()
    return [
        {**usage, "limits": {**defaults, **overrides.get(usage["project_id"], {})}}
        for usage in store.project_usage()
    ]


def render_projects(projects: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"projects": projects}, indent=2, sort_keys=True)
    header = f"{'PROJECT':<36}" + "".join(f"{name.upper() + ' used/limit':>24}" for name in _PROJECT_COLUMNS)
    rows = [
        _name(p["project_id"], 36)
        + "".join(f"{_usage(p[name], p['limits'][name]):>24}" for name in _PROJECT_COLUMNS)
        for p in projects
    ]
    return "\n".join([header, *rows] if rows else [header, "(no project usage yet)"])


_PROJECT_COLUMNS = ("instances", "vcpus", "memory_mb", "local_gb")


def _usage(used: int, limit: int) -> str:
    over = " !" if limit >= 0 and used > limit else ""
    return f"{used}/{'-' if limit < 0 else limit}{over}"


_NAME_LIMIT = 40  # a longer name would wrap, and its wrapped part could pass for a row


def _name(value: object, width: int) -> str:
    """A name from a message, escaped and cut: it can neither move the cursor nor start a row."""
    return f"{escape.text(value, _NAME_LIMIT)} ".ljust(width)


def _cell(resource: dict[str, Any]) -> str:
    capacity = "?" if resource["capacity"] is None else resource["capacity"]
    return f"{resource['used']}/{capacity}"


def _node_table(nodes: list[dict[str, Any]]) -> list[str]:
    header = (
        f"{'HOST':<14}{'NODE':<26}{'VMS':>5}  "
        + "".join(f"{c + ' used/cap':>22}" for c in _COLUMNS)
        + f"{'GEN':>8}  STATE"
    )
    rows = [
        f"{_name(n['host'], 14)}{_name(n['node'], 26)}{n['running_vms']:>5}  "
        + "".join(f"{_cell(n['resources'][c]):>22}" for c in _COLUMNS)
        + f"{n['generation']:>8}  {_state(n)}"
        for n in nodes
    ]
    return [header, *rows] if rows else [header, "(no compute nodes yet)"]


def _state(node: dict[str, Any]) -> str:
    """What keeps a scheduler off the node, and its zone."""
    flags = [flag for flag in ("disabled", "forced_down") if node.get(flag)]
    zone = node.get("availability_zone")
    return " ".join([*flags, *([f"az={escape.text(zone, _NAME_LIMIT)}"] if zone else [])]) or "-"


def _project_table(projects: list[dict[str, Any]]) -> list[str]:
    header = f"{'PROJECT':<36}{'INSTANCES':>10}{'VCPUS':>8}{'MEMORY_MB':>12}{'LOCAL_GB':>10}"
    rows = [
        _name(p["project_id"], 36)
        + f"{p['instances']:>10}{p['vcpus']:>8}{p['memory_mb']:>12}{p['local_gb']:>10}"
        for p in projects
    ]
    return [header, *rows]
