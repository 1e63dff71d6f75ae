"""Command line: ``python -m cloudsim jsonl|publish ...``.

``jsonl`` writes a reproducible stream (plus the oracle and inventory) for
tests; ``publish`` is the demo feed an operator watches on RabbitMQ.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from typing import Any

from cloudsim.cloud import Cloud
from cloudsim.delivery import shuffle_within_window, with_duplicates, write_json, write_jsonl
from cloudsim.envelope import Message


def _common(parser: argparse.ArgumentParser, hosts: int) -> None:
    """Options shared by both subcommands."""
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=hosts)
    parser.add_argument("--nodes-per-host", type=int, default=1)
    parser.add_argument("--format", choices=["versioned", "legacy"], default="versioned")
    parser.add_argument(
        "--state-change",
        choices=["vm_and_task_state", "vm_state", "off"],
        default="vm_and_task_state",
        help="[notifications] notify_on_state_change (instance.update)",
    )
    parser.add_argument("--shuffle-window", type=int, default=0)
    parser.add_argument("--duplicates", type=float, default=0.0)
    parser.add_argument("--oracle", help="write the end-of-run oracle JSON here")
    parser.add_argument("--inventory", help="write the node inventory JSON here")
    parser.add_argument("--flavors", help="write the flavor catalogue JSON here")


def build_parser() -> argparse.ArgumentParser:
    """``jsonl`` and ``publish`` subcommands."""
    parser = argparse.ArgumentParser(prog="cloudsim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    jsonl = sub.add_parser("jsonl", help="write one AMQP body per line")
    _common(jsonl, hosts=8)
    jsonl.add_argument("--out", required=True)
    pub = sub.add_parser("publish", help="publish with an oslo.messaging Notifier")
    _common(pub, hosts=6)
    pub.add_argument("--transport-url", default="rabbit://guest:guest@127.0.0.1:5672/")
    pub.add_argument("--exchange", default="nova")
    pub.add_argument("--rate", type=float, default=40.0, help="messages per second (0: max)")
    return parser


def simulate(args: argparse.Namespace) -> tuple[Cloud, list[Message]]:
    """Run the cloud and apply the requested delivery perturbations."""
    mode = None if args.state_change == "off" else args.state_change
    cloud = Cloud(
        args.seed,
        hosts=args.hosts,
        nodes_per_host=args.nodes_per_host,
        fmt=args.format,
        notify_on_state_change=mode,
    )
    rng = random.Random(args.seed * 7919 + 1)
    messages = cloud.run(args.instances, rng)
    messages = shuffle_within_window(messages, args.shuffle_window, rng)
    return cloud, with_duplicates(messages, args.duplicates, rng)


def _write_side_files(cloud: Cloud, args: argparse.Namespace) -> None:
    if args.oracle:
        write_json(cloud.oracle(), args.oracle)
    if args.inventory:
        write_json(cloud.inventory(), args.inventory)
    if args.flavors:
        write_json(cloud.flavors(), args.flavors)


def _progress(number: int, note: dict[str, Any]) -> None:
    """One line per published message, for the operator."""
    print(f"{number + 1:5d} {note['timestamp']} {note['publisher_id']:28s} {note['event_type']}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    cloud, messages = simulate(args)
    _write_side_files(cloud, args)
    if args.command == "jsonl":
        write_jsonl(messages, args.out)
        print(f"wrote {len(messages)} messages to {args.out}", file=sys.stderr)
        return 0
    # Imported lazily: oslo.messaging pulls in eventlet, which warns at import
    # time, and the jsonl mode does not need it.
    from cloudsim.publish import publish  # noqa: PLC0415

    publish(messages, args.transport_url, args.exchange, args.rate or None, _progress)
    print(f"published {len(messages)} messages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
