"""[database] options, named as oslo.db names them so operators find them."""

from oslo_config import cfg

GROUP = "database"

opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "connection",
        secret=True,
        sample_default="sqlite:////var/lib/tracker/tracker.sqlite",
        help="""
Required: SQLAlchemy URL of the tracker database. There is no default, so no
command ever creates a database file the operator did not name, in whatever
directory it runs from. A SQLite file (``sqlite:////var/lib/tracker/tracker.sqlite``,
created by ``tracker-manage db sync``) serves a single worker for trials and
demos. For production and for more than one worker use PostgreSQL
(``postgresql://tracker:pass@db/tracker``, driver psycopg 3 from
``pip install 'tracker[postgresql]'``) or MariaDB/MySQL
(``mysql+pymysql://tracker:pass@db/tracker``, driver PyMySQL from
``pip install 'tracker[mysql]'``; ``mysql://`` means the same): per-node
serialization across workers relies on their row locks. The value holds a
password and is never logged.
""",
    ),
    cfg.IntOpt(
        "max_pool_size",
        default=5,
        min=1,
        help="""
Connections kept open in the pool. A worker uses at most one per lane plus
one for the capacity relay, so ``[worker] lanes + 1`` is enough.
""",
    ),
    cfg.IntOpt(
        "max_overflow",
        default=5,
        min=0,
        help="Connections allowed above max_pool_size under a burst.",
    ),
    cfg.IntOpt(
        "pool_timeout",
        default=30,
        min=1,
        help="Seconds to wait for a pooled connection before failing (and retrying).",
    ),
    cfg.IntOpt(
        "connection_recycle_time",
        default=3600,
        min=1,
        help="""
Seconds after which a pooled connection is replaced. Keep it below the
server's idle timeout (MariaDB ``wait_timeout``) so no stale connection is
handed out.
""",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(opts, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, opts)]
