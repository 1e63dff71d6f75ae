"""cloudsim: an independent simulator of Nova's notification stream.

It drives simulated instances through Nova's lifecycles, emits the exact
versioned or legacy notifications (oslo ``messagingv2`` envelopes), and
computes the oracle: the usage Nova's resource tracker would report.
"""

from cloudsim.cloud import Cloud
from cloudsim.delivery import shuffle_within_window, with_duplicates, write_json, write_jsonl
from cloudsim.envelope import Message, inner

__all__ = [
    "Cloud",
    "Message",
    "inner",
    "shuffle_within_window",
    "with_duplicates",
    "write_json",
    "write_jsonl",
]
