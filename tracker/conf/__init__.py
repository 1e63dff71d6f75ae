"""Configuration: one module per option group, registered on a caller's ConfigOpts.

There is deliberately no global ``CONF``: every entry point builds its own
``cfg.ConfigOpts()`` and passes it down, as openstack/placement does.
"""

from oslo_config import cfg

from tracker.conf import (
    accounting,
    capacity_notifications,
    database,
    default,
    nova_notifications,
    quota,
    rabbit,
    worker,
)

_MODULES = (
    default,
    rabbit,
    database,
    nova_notifications,
    capacity_notifications,
    worker,
    accounting,
    quota,
)


def register_opts(conf: cfg.ConfigOpts) -> None:
    for module in _MODULES:
        module.register_opts(conf)


def load(argv: list[str] | None = None, default_config_files: list[str] | None = None) -> cfg.ConfigOpts:
    """Build a fresh ConfigOpts with every tracker option, parsed from argv."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(
        args=argv or [],
        project="tracker",
        default_config_files=default_config_files,
    )
    return conf
