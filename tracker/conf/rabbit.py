"""[oslo_messaging_rabbit] options: TLS to RabbitMQ, named and meant as oslo.messaging's.

An operator copies them from nova.conf. As with oslo.messaging, query
parameters of ``transport_url`` (``rabbit://…:5671/?ssl=1``) override them.
"""

from oslo_config import cfg

GROUP = "oslo_messaging_rabbit"

opts: list[cfg.Opt] = [
    cfg.BoolOpt(
        "ssl",
        default=False,
        help="""
Connect over SSL (TLS), as oslo.messaging's option of that name; ``?ssl=1`` in
``transport_url`` does the same. Without ``ssl_ca_file`` the broker's
certificate must chain to one of the system's certification authorities
(OpenSSL's default paths) and its name is not checked: set ``ssl_ca_file`` for
a private CA.
""",
    ),
    cfg.StrOpt(
        "ssl_ca_file",
        default="",
        help="""
SSL certification authority file (valid only if SSL enabled). The broker's
certificate must chain to it, and with a single broker host its name must
match the host in ``transport_url``.
""",
    ),
    cfg.StrOpt(
        "ssl_cert_file",
        default="",
        help="SSL cert file (valid only if SSL enabled): our client certificate, if RabbitMQ asks for one.",
    ),
    cfg.StrOpt(
        "ssl_key_file",
        default="",
        help="SSL key file (valid only if SSL enabled): the private key of ``ssl_cert_file``.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(opts, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, opts)]
