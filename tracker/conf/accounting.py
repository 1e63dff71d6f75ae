"""[accounting] options: inventory defaults and per-instance history bounds."""

from oslo_config import cfg

GROUP = "accounting"

# The inventory columns are SQL INTEGER: a count above this is refused by the
# database (Placement bounds its inventory the same way).
MAX_COUNT = 2**31 - 1
# Ratios are SQL FLOAT, single precision on MySQL; Placement's bound too. A
# larger ratio overflows the capacity it multiplies.
MAX_RATIO = 3.4e38

opts: list[cfg.Opt] = [
    cfg.IntOpt(
        "reserved_host_cpus",
        default=0,
        min=0,
        max=MAX_COUNT,
        help="Reserved VCPUs of a node registered without ``--reserved-vcpus`` (Nova's default).",
    ),
    cfg.IntOpt(
        "reserved_host_memory_mb",
        default=512,
        min=0,
        max=MAX_COUNT,
        help="Reserved MiB of a node registered without ``--reserved-memory-mb`` (Nova's default).",
    ),
    cfg.IntOpt(
        "reserved_host_disk_gb",
        default=0,
        min=0,
        max=MAX_COUNT,
        help="Reserved GiB of a node registered without ``--reserved-local-gb``.",
    ),
    cfg.FloatOpt(
        "initial_cpu_allocation_ratio",
        default=4.0,
        min=0.0,
        max=MAX_RATIO,
        help="CPU allocation ratio of a new node, as Nova's option of that name.",
    ),
    cfg.FloatOpt(
        "initial_ram_allocation_ratio",
        default=1.0,
        min=0.0,
        max=MAX_RATIO,
        help="RAM allocation ratio of a new node, as Nova's option of that name.",
    ),
    cfg.FloatOpt(
        "initial_disk_allocation_ratio",
        default=1.0,
        min=0.0,
        max=MAX_RATIO,
        help="Disk allocation ratio of a new node, as Nova's option of that name.",
    ),
    cfg.IntOpt(
        "history_limit",
        default=64,
        min=4,
        help="""
Events kept per instance to re-derive its state when a late event arrives.
Older events are folded into a snapshot; an event older than that snapshot is
dropped as stale (and counted). Raise it if Nova's hosts publish with large
delays or clock skew.
""",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(opts, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, opts)]
