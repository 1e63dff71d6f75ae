"""What may be kept of a message set aside: everything but its request context.

The oslo envelope carries the caller's request context, auth token included,
as ``_context_*`` keys. A set-aside message keeps its structure (so that a
replay reaches the verdict the worker reached) with the context removed by
construction, at every level:

- the body is parsed (JSON in UTF-8, -16 or -32, as the worker parses it);
  every object loses its ``_context_*`` keys, whatever escapes spelt them;
- a string holding JSON (``oslo.message``, or an envelope inside an envelope)
  is parsed and cleaned the same way, then written back as a string;
- a string that looks like JSON but does not parse, and a body that does not
  parse at all, are withheld: only their size and SHA-256 are kept. Context
  that cannot be parsed cannot be removed, so nothing of it is stored.
"""

import dataclasses
import hashlib
import json
from typing import Any

from tracker.events.envelope import CONTEXT_PREFIX

_JSON_STARTS = ("{", "[")


@dataclasses.dataclass(frozen=True)
class Redacted:
    """A body fit to store: ``text`` is JSON; ``withheld`` when the original is not kept."""

    text: str
    withheld: bool
    size: int
    sha256: str


def redact(body: bytes | str, max_bytes: int) -> Redacted:
    """The body without request context; withheld if it is larger than ``max_bytes``,
    so a letter is never much larger than that."""
    raw = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(raw).hexdigest()
    if len(raw) > max_bytes:
        return _withheld(raw, digest, f"larger than {max_bytes} bytes")
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return _withheld(raw, digest, "not JSON")
    try:
        text = json.dumps(_clean(parsed), ensure_ascii=True)
    except RecursionError:
        return _withheld(raw, digest, "nested too deeply")
    if len(text) > 2 * max_bytes:  # escapes can grow a body; a letter stays bounded
        return _withheld(raw, digest, "too large once escaped")
    return Redacted(text, withheld=False, size=len(raw), sha256=digest)


def _withheld(raw: bytes, digest: str, why: str) -> Redacted:
    marker = {"withheld": why, "bytes": len(raw), "sha256": digest}
    return Redacted(json.dumps(marker), withheld=True, size=len(raw), sha256=digest)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items() if not key.startswith(CONTEXT_PREFIX)}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, str) and value.lstrip().startswith(_JSON_STARTS):
        return _clean_embedded(value)
    return value


def _clean_embedded(value: str) -> str:
    """A string holding JSON (an inner envelope): cleaned and written back as a string."""
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        raw = value.encode("utf-8", "surrogatepass")
        return _withheld(
            raw, hashlib.sha256(raw).hexdigest(), "embedded text that looks like JSON but does not parse"
        ).text
    return json.dumps(_clean(parsed), ensure_ascii=True)
