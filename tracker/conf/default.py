"""[DEFAULT] options: where the message bus is, who we are on it, and Nova's default zone."""

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
    cfg.StrOpt(
        "default_availability_zone",
        default="nova",
        help="""
The availability zone of a host in no aggregate with ``availability_zone``
metadata: set it to Nova's ``[DEFAULT] default_availability_zone``, as Nova
places such hosts there. Capacity notifications carry it in
``availability_zone``.
""",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(opts)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, opts)]
