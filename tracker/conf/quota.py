"""[quota] options: per-project limits whose crossing raises a ``quota.exceeded`` alert."""

from oslo_config import cfg

GROUP = "quota"

_HELP = """
Default per-project limit of {what}; -1 means no limit. When a project's usage
goes over its limit, the tracker publishes one ``quota.exceeded`` notification
at priority ``error`` and logs one warning; nothing more until it has gone
back under and over again. Override per project with ``tracker-manage quota
set PROJECT --{option} N``. The tracker alerts, it does not refuse: Nova's own
quotas (``[quota]`` in nova.conf) still decide what boots.
"""

opts: list[cfg.Opt] = [
    cfg.IntOpt(name, default=-1, min=-1, help=_HELP.format(what=what, option=name.replace("_", "-")))
    for name, what in (
        ("instances", "instances (Nova's default quota is 10)"),
        ("vcpus", "vCPUs (Nova's ``cores``, default 20)"),
        ("memory_mb", "memory in MiB (Nova's ``ram``, default 51200)"),
        ("local_gb", "local disk in GiB"),
    )
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(opts, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, opts)]
