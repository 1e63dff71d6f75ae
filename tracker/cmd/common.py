"""What every console script does first: options, logging, database."""

import logging
import sys

from oslo_config import cfg

from tracker import conf as tracker_conf
from tracker import escape
from tracker.db.engine import Database

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"


def setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(escape.OneLineFormatter(LOG_FORMAT))
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler])
    # kombu and amqp are chatty at DEBUG; their INFO is what an operator wants.
    for noisy in ("amqp", "kombu"):
        logging.getLogger(noisy).setLevel(logging.INFO)


def parse_args(
    argv: list[str] | None, cli_opts: list[cfg.Opt] | tuple[()] = (), description: str = ""
) -> cfg.ConfigOpts:
    """A fresh ConfigOpts with every tracker option plus the script's CLI options."""
    conf = cfg.ConfigOpts()
    tracker_conf.register_opts(conf)
    conf.register_cli_opts(
        [cfg.BoolOpt("debug", short="d", default=False, help="Log at DEBUG level."), *cli_opts]
    )
    conf(args=sys.argv[1:] if argv is None else argv, project="tracker", description=description)
    return conf


def database(conf: cfg.ConfigOpts) -> Database:
    return Database.from_conf(conf)
