"""[DEFAULT] options: where the message bus is and who we are on it."""

import socket

from oslo_config import cfg

GROUP = "DEFAULT"

opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "transport_url",
        default="rabbit://guest:guest@127.0.0.1:5672/",
        secret=True,
        help="""
The RabbitMQ the tracker consumes Nova's notifications from and publishes
capacity notifications to, in oslo.messaging's form:
``rabbit://user:pass@host1:port1,user:pass@host2:port2/vhost``.

Point it at the same broker (and virtual host) as Nova's
``[oslo_messaging_notifications] transport_url``, or Nova's
``[DEFAULT] transport_url`` when that one is unset. Several hosts give
failover, tried in order on reconnect. The value holds a password and is never
logged.
""",
    ),
    cfg.StrOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<hostname>",
        help="""
Name of this tracker process on the bus: it becomes the host part of the
``publisher_id`` (``tracker:<host>``) of capacity notifications, and is
written in dead-lettered messages so an operator knows which worker set them
aside.
""",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(opts)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, opts)]
