"""Aggregate every option group for oslo-config-generator (entry point ``tracker``)."""

from oslo_config import cfg

from tracker.conf import _MODULES


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    grouped: list[tuple[str, list[cfg.Opt]]] = []
    for module in _MODULES:
        grouped.extend(module.list_opts())
    return grouped
