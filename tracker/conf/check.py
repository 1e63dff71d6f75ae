"""Configuration mistakes found before anything runs, each told in one line.

oslo.config converts a value only when it is read, and ignores sections and
options it does not know. An operator who wrote ``lanes = abc`` or
``[databse]`` deserves to hear it at start, not from a traceback an hour later
or never.
"""

import os

from oslo_config import cfg

from tracker.errors import ConfigError


def check_values(conf: cfg.ConfigOpts) -> None:
    """Read every option once, so a value that does not convert fails now, named."""
    for group_name, option in _registered(conf):
        group = conf if group_name is None else conf[group_name]
        try:
            group[option]
        except ValueError as error:  # cfg.ConfigFileValueError among them
            cause = error.__context__ or error  # "invalid literal for int()…", without oslo's wrapping
            files = ", ".join(_config_files(conf)) or "the command line"
            raise ConfigError(
                f"invalid value for [{group_name or 'DEFAULT'}] {option} in {files}: {cause}"
            ) from error


def unknown_options(conf: cfg.ConfigOpts) -> list[str]:
    """``[section] option`` (or ``[section]`` when the whole section is unknown)
    found in the configuration files that no registered option reads."""
    known: dict[str, set[str]] = {}
    for group_name, option in _registered(conf):
        known.setdefault(group_name or "DEFAULT", set()).add(option)
    unknown = []
    for path in _config_files(conf):
        for section, options in _sections(path).items():
            if section not in known:
                unknown.append(f"[{section}] in {path}")
                continue
            unknown.extend(
                f"[{section}] {name} in {path}"
                for name in sorted(options)
                if name.replace("-", "_") not in known[section]
            )
    return unknown


def _registered(conf: cfg.ConfigOpts) -> list[tuple[str | None, str]]:
    options: list[tuple[str | None, str]] = []
    for name in conf:
        if isinstance(conf[name], cfg.ConfigOpts.GroupAttr):
            options.extend((name, option) for option in conf[name])
        else:
            options.append((None, name))
    return options


def _config_files(conf: cfg.ConfigOpts) -> list[str]:
    files = list(conf.config_file or [])
    for directory in conf.config_dir or []:
        files.extend(
            os.path.join(directory, name) for name in sorted(os.listdir(directory)) if name.endswith(".conf")
        )
    return files


def _sections(path: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    cfg.ConfigParser(path, sections).parse()
    return sections
