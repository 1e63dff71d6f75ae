"""[accounting] options: inventory defaults and per-instance history bounds."""

from oslo_config import cfg

from tracker.accounting import usage

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
    cfg.StrOpt(
        "disk_rounding",
        default=usage.PLACEMENT,
        choices=[
            (usage.RESOURCE_TRACKER, "swap / 1024 truncated per instance, as compute_nodes.local_gb_used"),
            (usage.PLACEMENT, "swap rounded up to a whole GiB per instance, as Placement's DISK_GB"),
        ],
        help="""
How a swap that is not a whole GiB counts on disk. Placement rounds it up (a
1536 MiB swap allocates 2 GiB of DISK_GB), Nova's resource tracker truncates it
(1 GiB in compute_nodes.local_gb_used). The default follows Placement: Nova's
scheduler decides with Placement's allocations, so free capacity is what
Placement has left, and a move's failure is accounted as Placement accounts
it. Choose ``resource_tracker`` to compare the figures with Nova's
compute_nodes table (``nova hypervisor-show``). Changing it applies to
allocations computed from then on.
""",
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
