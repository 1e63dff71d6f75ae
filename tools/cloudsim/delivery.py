"""Delivery perturbations and output: pure helpers over message lists.

RabbitMQ gives no ordering across publishers and redelivers unacked messages,
so the tracker must cope with bounded reordering and exact duplicates.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from cloudsim.envelope import Message


def shuffle_within_window(messages: Sequence[Message], window: int, rng: random.Random) -> list[Message]:
    """Reorder so that every message moves at most ``window`` positions.

    Sorting by ``index + U(0, window)`` bounds displacement: an element can
    only be overtaken by elements at most ``window`` positions behind it.
    """
    if window <= 0:
        return list(messages)
    keys = [(i + rng.uniform(0, window), i) for i in range(len(messages))]
    return [messages[i] for _, i in sorted(keys)]


def with_duplicates(
    messages: Sequence[Message], rate: float, rng: random.Random, max_delay: int = 50
) -> list[Message]:
    """Re-insert exact copies (same message_id) of about ``rate`` of the
    messages, each somewhere after its original, like a redelivery."""
    out = list(messages)
    originals = [i for i in range(len(messages)) if rng.random() < rate]
    for i in reversed(originals):
        copy = json.loads(json.dumps(messages[i]))
        at = min(len(out), i + 1 + rng.randint(0, max_delay))
        out.insert(at, copy)
    return out


def write_jsonl(messages: Sequence[Message], path: str | Path) -> None:
    """One AMQP body (the oslo envelope dict) per line."""
    with open(path, "w", encoding="utf-8") as handle:
        for message in messages:
            handle.write(json.dumps(message["body"]) + "\n")


def write_json(data: object, path: str | Path) -> None:
    """Pretty JSON for the oracle and inventory files."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
