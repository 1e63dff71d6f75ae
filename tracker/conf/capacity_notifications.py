"""[capacity_notifications] options: what schedulers subscribe to."""

from oslo_config import cfg

GROUP = "capacity_notifications"

opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "exchange",
        default="tracker",
        help="""
Exchange capacity notifications go to. A scheduler subscribes with a stock
oslo.messaging notification listener on
``Target(exchange=<this>, topic=<topic>)``.
""",
    ),
    cfg.StrOpt(
        "topic",
        default="capacity_notifications",
        help="Notification topic; messages carry routing key ``<topic>.info``.",
    ),
    cfg.BoolOpt(
        "amqp_durable_queues",
        default=False,
        help="""
Must equal the subscribers' ``[oslo_messaging_rabbit] amqp_durable_queues``:
their listeners declare the same exchange and RabbitMQ refuses a declaration
whose durability differs.
""",
    ),
    cfg.IntOpt(
        "relay_batch_size",
        default=500,
        min=1,
        help="""
Outbox rows the relay reads per round. Rows for one node are coalesced: only
the newest generation is published, since every notification is absolute.
""",
    ),
    cfg.FloatOpt(
        "announce_interval",
        default=60.0,
        min=0.0,
        help="""
Seconds over which every node's current capacity is announced again, spread
evenly (a slice of the nodes each second), as Nova's computes report every 60
seconds. A scheduler that starts, restarts or lost its queue knows every node
within one interval; one that has a node drops the repeat (same generation).
Each worker announces: with several workers, raise it accordingly. 0 disables
it (schedulers then load a snapshot: ``tracker-status --format json``).
""",
    ),
    cfg.FloatOpt(
        "relay_interval",
        default=1.0,
        min=0.05,
        help="""
Seconds between outbox sweeps when no commit woke the relay. The sweep
publishes what a crashed worker or ``tracker-manage replay`` left behind.
""",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(opts, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, opts)]
