"""[nova_notifications] options: how we listen to Nova without disturbing it."""

from oslo_config import cfg

GROUP = "nova_notifications"

opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "exchange",
        default="nova",
        help="""
Nova's control exchange, where Nova's notifier publishes. Nova sets it to
``nova``; change it only if Nova's ``[DEFAULT] control_exchange`` differs.
""",
    ),
    cfg.BoolOpt(
        "amqp_durable_queues",
        default=False,
        help="""
Must equal Nova's ``[oslo_messaging_rabbit] amqp_durable_queues``. The
tracker declares Nova's exchange exactly as oslo.messaging does (type topic,
durable only when this is on); RabbitMQ refuses a declaration whose durability
differs (406 PRECONDITION_FAILED), and the worker then stops with an error
naming this option.
""",
    ),
    cfg.StrOpt(
        "notification_format",
        default="versioned",
        choices=[
            ("versioned", "consume instance.* on the versioned topic"),
            ("unversioned", "consume legacy compute.instance.* on the legacy topic"),
        ],
        help="""
Which of Nova's notification formats to consume; match Nova's
``[notifications] notification_format``. When Nova sends ``both``, pick
``versioned``: consuming both would see every lifecycle twice, under different
message ids. Legacy payloads carry no swap size, so with ``unversioned``
register flavors with swap (``tracker-manage flavor set``).
""",
    ),
    cfg.StrOpt(
        "versioned_topic",
        default="versioned_notifications",
        help="Nova's ``[notifications] versioned_notifications_topics`` entry to follow.",
    ),
    cfg.StrOpt(
        "legacy_topic",
        default="notifications",
        help="Nova's ``[oslo_messaging_notifications] topics`` entry to follow.",
    ),
    cfg.StrOpt(
        "queue",
        default="tracker.nova_notifications",
        help="""
Our own durable queue, bound to ``<topic>.info`` and ``<topic>.error`` on
Nova's exchange. Being ours, it leaves Nova's default queue and other
consumers (Ceilometer, Watcher) undisturbed. Every tracker worker shares it,
so RabbitMQ spreads the messages between them.
""",
    ),
    cfg.IntOpt(
        "prefetch_count",
        default=1000,
        min=1,
        max=65535,
        help="""
Unacknowledged messages one worker holds at once. It bounds memory
(prefetch_count x max_message_bytes) and the work redelivered if a worker dies.
Lanes fill their batches from it: keep it at least ``[worker] lanes x
[worker] batch_size``. A larger value also lets events of a quiet node overtake
a flood for another sooner: they wait for at most (messages ahead of them -
prefetch_count) to be applied.
""",
    ),
    cfg.IntOpt(
        "max_message_bytes",
        default=262144,
        min=1024,
        help="""
Larger messages are dead-lettered unparsed. Nova's largest instance payloads
(many block devices, addresses and tags) stay well below 64 KiB.
""",
    ),
    cfg.IntOpt(
        "dead_letter_max_bytes",
        default=1048576,
        min=1024,
        help="""
A message set aside whole (request context removed) can be replayed with
``tracker-manage dead-letter replay`` once its cause is fixed, for instance
after raising ``max_message_bytes``. Bodies larger than this, and bodies that
are not JSON, are not kept: their dead letter holds only the size, SHA-256,
routing key and reason. Cleaning a body costs CPU and memory in proportion to
its size, so keep this a small multiple of ``max_message_bytes``. Memory per
message is bounded by RabbitMQ's ``max_message_size``, not by this tracker:
set it on the broker (Nova's messages stay below 64 KiB).
""",
    ),
    cfg.StrOpt(
        "dead_letter_queue",
        default="tracker.dead_letter",
        help="""
Durable queue, on RabbitMQ's default exchange, where messages that can never
be applied (undecodable, invalid, impossible values) are set aside with the
reason, their request context removed. ``tracker-manage dead-letter list`` and
``replay`` read it.
""",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(opts, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, opts)]
