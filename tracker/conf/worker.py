"""[worker] options: concurrency, retry and shutdown of ``tracker-worker``."""

from oslo_config import cfg

GROUP = "worker"

opts: list[cfg.Opt] = [
    cfg.IntOpt(
        "lanes",
        default=2,
        min=1,
        max=256,
        help="""
Ordered workers in one process. Events are routed to a lane by compute host
(a stable crc32), so one host's events are applied in order, one at a time.
Across processes the database row locks serialize instead. Measured with
tools/bench on 2 cores: on Nova's audit burst over 10 000 nodes 2 lanes
applied 1.4 times as much as 1 (one lane's database round trips overlap the
other's work); on the lifecycle mix 1 lane was as fast or faster, with lower
latency, since an instance's events come from several hosts and two lanes
wait on each other's row locks. More than 2 were slower. For throughput, raise
``workers``.
""",
    ),
    cfg.IntOpt(
        "workers",
        default=1,
        min=1,
        max=64,
        help="""
Worker processes, each with its own connections, consuming the same queue, as
an OpenStack service's ``workers``. One process is bound to one core by
Python's GIL: on a 2-core machine with PostgreSQL and RabbitMQ local, 2
processes with ``lanes = 1`` each drained a backlog 1.8 to 2.7 times as fast as
1 process with 2 lanes (tools/bench); with 2 lanes each, less. Correctness does not
depend on the count (the database's row locks serialize each node). A process
that dies is started again; with several, each writes its health record to
``<health_file>.<n>`` and only the first re-announces nodes.
""",
    ),
    cfg.IntOpt(
        "batch_size",
        default=500,
        min=1,
        max=10000,
        help="""
Most events a lane applies in one database transaction (group commit). A lane
takes whatever has queued up for it, up to this many; their messages are
acknowledged together once the transaction committed. Larger batches mean
fewer transactions under load and more redelivered work if a worker dies.
""",
    ),
    cfg.FloatOpt(
        "batch_wait",
        default=0.005,
        min=0.0,
        max=1.0,
        help="""
Seconds a lane waits for more events once it has one, before applying what it
has. Under load batches fill without waiting; on a quiet bus this is the most
it adds to an event's latency.
""",
    ),
    cfg.FloatOpt(
        "shutdown_timeout",
        default=30.0,
        min=0.0,
        help="""
On SIGTERM, seconds to let lanes finish the messages already received before
closing. Whatever is still unfinished stays unacknowledged and RabbitMQ
redelivers it to another worker; applying it twice changes nothing.
""",
    ),
    cfg.FloatOpt(
        "db_retry_initial_backoff",
        default=0.1,
        min=0.0,
        help=(
            "First wait, in seconds, before retrying a transaction that hit a deadlock, "
            "a lost connection or a concurrent update."
        ),
    ),
    cfg.FloatOpt(
        "db_retry_max_backoff",
        default=30.0,
        min=0.1,
        help="""
Ceiling of the exponential backoff between transaction retries. Transient
database faults are retried until the database is back: the message stays
unacknowledged meanwhile, so nothing is lost.
""",
    ),
    cfg.FloatOpt(
        "reconnect_initial_backoff",
        default=1.0,
        min=0.0,
        help="First wait, in seconds, before reconnecting to RabbitMQ after the connection dropped.",
    ),
    cfg.FloatOpt(
        "reconnect_max_backoff",
        default=60.0,
        min=0.1,
        help="Ceiling of the exponential, jittered backoff between reconnection attempts.",
    ),
    cfg.StrOpt(
        "health_file",
        help="""
Where the worker rewrites a small JSON health record every few seconds while
it consumes (counters, pending work). Point a liveness probe at it with
``tracker-status --check-health``. Unset: no record.
""",
    ),
    cfg.IntOpt(
        "heartbeat",
        default=60,
        min=0,
        help="AMQP heartbeat in seconds (0 disables); a dead broker is noticed within twice this.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(opts, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, opts)]
